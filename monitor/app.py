"""The context object: everything a command needs, built once from the config and passed along."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import TextIO

from models.base import Classifier
from monitor.alerts.dispatch import Dispatcher
from monitor.alerts.incidents import IncidentBook
from monitor.alerts.slack import ConsoleSender, SlackSender
from monitor.archive import Archive
from monitor.clock import Clock
from monitor.config import Config
from monitor.detect.brand import BrandMonitor, DetectionSettings
from monitor.pipeline import Pipeline
from monitor.query import BrandMatcher, parse_query

log = logging.getLogger(__name__)


@dataclass
class App:
    config: Config
    clock: Clock
    archive: Archive
    classifier: Classifier
    pipeline: Pipeline
    alert_target: str  # "slack" or "console", for logs and summaries

    def close(self) -> None:
        self.archive.close()


def load_model(config: Config) -> Classifier:
    from models.loader import load_classifier

    return load_classifier(config.classifier.model, batch_size=config.classifier.batch_size)


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
                slack.token, slack.channel, slack.api_url, timeout=slack.timeout.total_seconds()
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
                archive.engine, clock, join_window=config.alerts.join_window, target=target
            ),
            dispatcher=Dispatcher(
                archive.engine,
                sender,
                clock,
                max_attempts=config.alerts.max_attempts,
                complaint_threshold=config.classifier.complaint_threshold,
            ),
            clock=clock,
            complaint_threshold=config.classifier.complaint_threshold,
            fresh_within=config.detection.window,
            batch_size=config.classifier.batch_size,
        )
    except BaseException:
        archive.close()
        raise
    return App(config, clock, archive, model, pipeline, target)
