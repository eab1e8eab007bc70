"""Brand-name substitution for training: no head should learn that a name means news or grievance.

The headlines used as hard negatives are full of Google, Apple, GM and Comcast; the complaint
tweets of JetBlue, Delta and McDonalds. A model trained on them as they are could learn "Apple"
→ news and "Delta" → complaint, and a brand nobody saw in training (Larkspur Airways) would get
neither. ``substitute_brands`` replaces each brand name it finds with a random one from the same
list (fixed seed), so the words around the name have to carry the label. ``@handles`` need no
swap: ``models.text.normalize_tweet`` turns every one into ``@user``.
"""

from __future__ import annotations

import random
import re

# Well-known brands from the training data's domains (airlines, retail, tech, food, telecoms,
# cars, services) and a few made-up ones, so unseen names are part of what training sees.
BRANDS: tuple[str, ...] = (
    "Amazon", "Apple", "Google", "Microsoft", "Samsung", "Sony", "Xbox", "PlayStation",
    "Netflix", "Hulu", "Spotify", "Uber", "Lyft", "Airbnb", "Facebook", "Twitter", "YouTube",
    "Comcast", "Verizon", "AT&T", "Sprint", "T-Mobile", "Vodafone", "EE", "Sky",
    "United", "United Airlines", "Delta", "American Airlines", "JetBlue", "Southwest",
    "Ryanair", "easyJet", "British Airways", "Virgin Trains", "AirAsia", "Lufthansa",
    "McDonald's", "McDonalds", "Starbucks", "Burger King", "KFC", "Domino's", "Whole Foods",
    "Walmart", "Target", "Tesco", "IKEA", "Nordstrom", "Nike", "Adidas", "H&M", "Zara",
    "eBay", "PayPal", "Dell", "HP", "Lenovo", "Intel", "GM", "Ford", "Toyota", "Honda", "VW",
    "Tesla", "GEICO", "FedEx", "UPS", "DHL", "Royal Mail", "Hertz", "Expedia",
    "Larkspur Airways", "Brightwell Telecom", "Copperfield Foods", "Norland Rail",
    "Quillby", "Fenmore Bank", "Tallis Motors", "Orbisoft",
)

_PATTERN = re.compile(
    r"(?<![\w&'-])(" + "|".join(re.escape(b) for b in sorted(BRANDS, key=len, reverse=True))
    + r")(?![\w&-])(?! (?:States|Kingdom|Nations|Way)\b)"
)


def substitute_brands(text: str, rng: random.Random, p: float = 0.5) -> str:
    """``text`` with each brand name swapped, with probability ``p``, for another from BRANDS."""
    if p <= 0:
        return text

    def swap(match: re.Match[str]) -> str:
        if rng.random() >= p:
            return match.group(0)
        choice = rng.choice(BRANDS)
        while choice == match.group(0):
            choice = rng.choice(BRANDS)
        return choice

    return _PATTERN.sub(swap, text)
