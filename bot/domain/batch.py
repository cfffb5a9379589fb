"""What a bulk request's items come to, counted: its progress while it runs and its result.

Pure functions over a :class:`~bot.domain.model.VerificationRequest`: the Block Kit layer shows
them (the request message's progress line, the final thread reply, the Home tab), the runner
decides from them whether to show progress again.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from bot.domain.inputs import other_forms
from bot.domain.model import Item, State, VerificationRequest


@dataclass(frozen=True)
class Progress:
    """How many of a bulk request's items are in each state, and an estimate of the time left."""

    total: int
    queued: int  # approved (or waiting for approval), not started
    running: int  # claimed: the provider is being called
    succeeded: int
    failed: int
    unknown: int
    cancelled: int  # stopped before they ran (Cancel during the run), or closed with the request
    resolved: int
    # Seconds left at the pace so far (None: not started, or nothing done yet to measure by).
    eta_seconds: float | None = None

    @property
    def done(self) -> int:
        """Items whose call has an outcome (or that will never be called)."""
        return self.total - self.queued - self.running


def progress_of(request: VerificationRequest, now: datetime | None = None) -> Progress:
    """The counts of ``request``'s items by state; with ``now``, and a run under way since
    ``request.started_at``, the time left at the pace so far."""
    counts = Counter(item.state for item in request.items)
    progress = Progress(
        total=len(request.items),
        queued=counts[State.PENDING],
        running=counts[State.EXECUTING],
        succeeded=counts[State.SUCCEEDED],
        failed=counts[State.FAILED],
        unknown=counts[State.UNKNOWN],
        cancelled=counts[State.CANCELLED] + counts[State.REJECTED] + counts[State.EXPIRED],
        resolved=counts[State.RESOLVED],
    )
    started = request.started_at
    left = progress.queued + progress.running
    if now is None or started is None or request.state is not State.EXECUTING or not left:
        return progress
    elapsed = (now - started).total_seconds()
    if progress.done <= 0 or elapsed <= 0:
        return progress
    eta = left * elapsed / progress.done
    return Progress(**{**progress.__dict__, "eta_seconds": eta})


def items_in(request: VerificationRequest, *states: State) -> tuple[Item, ...]:
    """The request's items in any of ``states``, in their order."""
    wanted = set(states)
    return tuple(item for item in request.items if item.state in wanted)


def domains_of(request: VerificationRequest) -> list[tuple[str, int]]:
    """The domains of the request's items with how many items each, most first (then by name)."""
    counts = Counter(item.domain for item in request.items)
    return sorted(counts.items(), key=lambda pair: (-pair[1], pair[0]))


def is_batch(request: VerificationRequest) -> bool:
    """A bulk request (or any request of several items): shown through its items, never
    through ``request.email`` (which raises for it)."""
    return request.bulk or len(request.items) > 1


def item_for(request: VerificationRequest, email: str) -> Item | None:
    """The request's item for ``email`` (compared case-insensitively, in either IDNA form of
    its domain, as the store finds it), or None."""
    keys = {form.lower() for form in (email, *other_forms(email))}
    return next((item for item in request.items if item.email.lower() in keys), None)
