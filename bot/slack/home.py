"""The app's Home tab: each person's queue, published when they open it and kept current.

An approver sees the requests waiting for them, with the same Approve and Reject buttons as in
the channel (they work the same: quorum, four eyes), and the last decisions; a requester sees
their own requests and their states, with Cancel. Whoever has opened the Home tab (remembered
in the store, across replicas) gets it published again when one of the requests it shows
changes.

Those refreshes run on a worker of their own (``executor``), never on the thread of the click
or delivery that caused them, and they are coalesced: a viewer waiting to be published is
published once, however many requests changed meanwhile (a burst of approvals costs each
viewer one ``views.publish``, not one per change).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from datetime import datetime, timedelta
from typing import Protocol

from slack_sdk import WebClient

from bot.domain.model import VerificationRequest, utcnow
from bot.domain.service import Approvals
from bot.slack import blocks
from bot.slack.errors import CALL_ERRORS, classify

log = logging.getLogger(__name__)

# Whose Home is kept current: those who opened it within this long.
VIEWERS_FOR = timedelta(days=7)


class HomeStore(Protocol):
    def get(self, request_id: str) -> VerificationRequest | None: ...

    def saw_home(self, user_id: str, *, now: datetime) -> None: ...

    def home_viewers(self, *, since: datetime) -> list[str]: ...


class Home:
    def __init__(
        self,
        approvals: Approvals,
        store: HomeStore,
        client: WebClient,
        channel: str,
        clock: Callable[[], datetime] = utcnow,
        executor: Executor | None = None,
    ) -> None:
        """``executor`` runs the refreshes (one worker is enough: they are coalesced); None
        runs them on the caller's thread."""
        self.approvals = approvals
        self.store = store
        self.client = client
        self.channel = channel
        self.clock = clock
        self.executor = executor
        self._lock = threading.Lock()
        self._waiting: dict[str, None] = {}  # viewers to publish, in the order they came
        self._draining = False

    def opened(self, user_id: str) -> None:
        """``user_id`` opened the Home tab: remember it, and publish their queue."""
        self.store.saw_home(user_id, now=self.clock())
        self.publish(user_id)

    def publish(self, user_id: str) -> bool:
        """Publish ``user_id``'s Home tab as it stands now; False when Slack would not."""
        view = blocks.home_view(self.approvals.home_for(user_id), self.channel)
        try:
            self.client.views_publish(user_id=user_id, view=view)
        except CALL_ERRORS as exc:
            log.warning("Could not publish the Home tab of %s: %s", user_id, classify(exc).error)
            return False
        return True

    def refresh(self, request_id: str) -> None:
        """Publish again, on the executor, the Home of everyone who has it open and sees this
        request there (its requester, and approvers); a viewer already waiting is not added
        twice."""
        request = self.store.get(request_id)
        if request is None:
            return
        viewers = [
            viewer
            for viewer in self.store.home_viewers(since=self.clock() - VIEWERS_FOR)
            if viewer == request.requester or self.approvals.roles.is_approver(viewer)
        ]
        if not viewers:
            return
        with self._lock:
            self._waiting.update(dict.fromkeys(viewers))
            if self._draining:
                return  # the running drain publishes them too
            self._draining = True
        if self.executor is None:
            self._drain()
        else:
            self.executor.submit(self._drain)

    def _drain(self) -> int:
        """Publish every waiting viewer, until none is left; how many were published."""
        published = 0
        try:
            while True:
                with self._lock:
                    if not self._waiting:
                        self._draining = False
                        return published
                    viewer = next(iter(self._waiting))
                    del self._waiting[viewer]
                published += self.publish(viewer)
        except BaseException:
            with self._lock:
                self._draining = False
            raise
