"""The context object: everything a command needs, built once from the config and passed along."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import TextIO

from models.base import Classifier
from monitor.alerts.dispatch import Dispatcher
from monitor.alerts.incidents import IncidentBook
from monitor.alerts.interactive import SlackButtons
from monitor.alerts.loop import AlertLoop
from monitor.alerts.rules import Router
from monitor.alerts.setup import build_alert_loop
from monitor.alerts.slack import ConsoleSender, SlackSender
from monitor.archive import Archive
from monitor.brands.query import BrandMatcher, parse_query
from monitor.clock import Clock
from monitor.config import Config
from monitor.detect.brand import BrandMonitor, DetectionSettings
from monitor.detect.stage import build_story_stage
from monitor.pipeline import Pipeline, example_of

log = logging.getLogger("monitor.app")  # its name before the move: log lines unchanged


@dataclass
class App:
    config: Config
    clock: Clock
    archive: Archive
    classifier: Classifier
    pipeline: Pipeline
    alert_target: str  # "slack" or "console", for logs and summaries
    alerting: AlertLoop | None = None  # acks + escalation + delivery, for the daemon's loop

    def close(self) -> None:
        self.archive.close()


def load_model(config: Config) -> Classifier:
    from models.loader import load_classifier

    return load_classifier(
        config.classifier.model,
        batch_size=config.classifier.batch_size,
        labels=config.classifier.labels or None,
    )


def load_multilingual(config: Config) -> Classifier | None:
    """The model for non-English mentions, or None (they stay unclassified)."""
    if not config.classifier.multilingual_model:
        return None
    from models.loader import load_classifier

    return load_classifier(
        config.classifier.multilingual_model, batch_size=config.classifier.batch_size
    )


def detection_settings(config: Config) -> DetectionSettings:
    d = config.detection
    return DetectionSettings(
        bucket=d.bucket,
        window=d.window,
        min_count=d.min_count,
        cooldown=d.cooldown,
        max_examples=d.examples,
    )


def build_app(
    config: Config,
    clock: Clock,
    *,
    archive_url: str | None = None,
    classifier: Classifier | None = None,
    console: TextIO | None = None,
) -> App:
    """Open the archive, load the model and wire the pipeline. Raises typed Uproar errors."""
    archive = Archive(archive_url or config.archive.url)
    try:
        model = classifier or load_model(config)
        slack = config.alerts.slack
        if slack.token:
            sender: SlackSender | ConsoleSender = SlackSender(
                slack.token,
                slack.channel,
                slack.api_url,
                timeout=slack.timeout.total_seconds(),
                buttons=bool(slack.app_token),
                ack_reaction=config.alerts.ack_reaction,
            )
            target = "slack"
        else:
            sender = ConsoleSender(console or sys.stdout)
            target = "console"
        matcher = BrandMatcher([(b.key, parse_query(b.query)) for b in config.brands])
        pipeline = Pipeline(
            archive=archive,
            classifier=model,
            matcher=matcher,
            brand_names={b.key: b.name for b in config.brands},
            monitor=BrandMonitor(detection_settings(config)),
            incidents=IncidentBook(
                archive.engine,
                clock,
                join_window=config.alerts.join_window,
                target=target,
                router=Router(config.alerts, slack.channel),
                public_url=config.serve.public_url,
            ),
            dispatcher=Dispatcher(
                archive.engine,
                sender,
                clock,
                max_attempts=config.alerts.max_attempts,
                complaint_threshold=config.classifier.complaint_threshold,
                channel_interval=config.alerts.channel_interval,
            ),
            clock=clock,
            complaint_threshold=config.classifier.complaint_threshold,
            fresh_within=config.detection.window,
            batch_size=config.classifier.batch_size,
            stories=build_story_stage(
                engine=archive.engine,
                classifier=model,
                example_of=example_of,
                complaint_threshold=config.classifier.complaint_threshold,
                brand_names={b.key: b.name for b in config.brands},
                story_similarity=config.detection.story_similarity,
                high_reach_followers=config.detection.high_reach_followers,
                max_examples=max(config.detection.examples, 5),
                min_count=config.detection.min_count,
            ),
        )
        pipeline.multilingual = load_multilingual(config)
    except BaseException:
        archive.close()
        raise
    alerting = build_alert_loop(
        config.alerts,
        pipeline.incidents,
        pipeline.dispatcher,
        sender,
        brands={b.key: b.name for b in config.brands},
        slack_channel=slack.channel,
        complaint_threshold=config.classifier.complaint_threshold,
    )
    if slack.token and slack.app_token:
        alerting.buttons = SlackButtons(
            slack.app_token, slack.token, slack.api_url, pipeline.incidents
        )
    return App(config, clock, archive, model, pipeline, target, alerting)
