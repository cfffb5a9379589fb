"""End to end, the App Home tab: each person's queue, published when they open it, with
buttons that work exactly as in the channel (their private answers come by DM, as a Home click
carries no response_url), and kept current while it is open."""

from __future__ import annotations

import json
import sqlite3
from concurrent.futures import Executor
from datetime import UTC, datetime, timedelta
from typing import Any

from worlds import confirm_calls

from bot.domain.model import State
from bot.slack import ids
from bot.standins import payloads
from bot.standins.driver import button_values, rendered
from bot.standins.world import APPROVER, REQUESTER, SECOND_APPROVER, World


def test_an_approver_approves_from_the_home_tab(database_url, tmp_path):
    """With two approvals needed: the Home tab lists the waiting request with Approve and
    Reject; the first approval from the Home tab is answered by DM (no response_url) and the
    Home is published again; the second approver's click calls the provider once."""
    settings = {"DATABASE_URL": database_url, "APPROVALS_REQUIRED": 2}
    with World(database_path=tmp_path / "unused.db", settings=settings) as world:
        message = world.driver.ask(REQUESTER, "alice@example.com")
        home = world.driver.open_home(APPROVER)
        assert "Waiting for your approval (1)" in rendered(home)
        [request_id] = button_values(home, ids.APPROVE_ACTION)
        assert button_values(home, ids.REJECT_ACTION) == [request_id]
        publishes = len(world.slack.calls_to("views.publish"))
        assert world.driver.click_home(APPROVER, ids.APPROVE_ACTION, request_id).status == 200
        world.slack.wait_for(
            lambda: (
                any("Your approval is recorded" in t for t in world.driver.dm_texts(APPROVER))
                or None
            ),
            what="the private answer by DM",
        )
        # Kept current: the approver's open Home no longer offers what they already approved.
        world.slack.wait_for(
            lambda: len(world.slack.calls_to("views.publish")) > publishes or None,
            what="the Home published again",
        )
        assert button_values(world.slack.home(APPROVER) or {}, ids.APPROVE_ACTION) == []
        second = world.driver.open_home(SECOND_APPROVER)
        assert "1 of 2 approvals" in rendered(second)
        world.driver.click_home(SECOND_APPROVER, ids.APPROVE_ACTION, request_id)
        world.driver.final_message(message)
        assert confirm_calls(world) == 1
        assert "Nothing is waiting for you" in rendered(world.driver.open_home(SECOND_APPROVER))


def test_a_requester_sees_their_requests_and_cancels_from_home(world):
    """A requester's Home lists their requests and states, with Cancel on a pending one; the
    Cancel works from there (answered by DM) and the Home shows it cancelled."""
    message = world.driver.ask(REQUESTER, "alice@example.com")
    home = world.driver.open_home(REQUESTER)
    assert "Your requests, last 30 days (1)" in rendered(home)
    assert "Waiting for your approval" not in rendered(home)  # not an approver
    [request_id] = button_values(home, ids.CANCEL_ACTION)
    world.driver.click_home(REQUESTER, ids.CANCEL_ACTION, request_id)
    world.driver.final_message(message)
    world.slack.wait_for(
        lambda: (
            any("You cancelled your request" in t for t in world.driver.dm_texts(REQUESTER)) or None
        ),
        what="the DM saying it was cancelled",
    )
    world.slack.wait_for(
        lambda: "Cancelled by" in rendered(world.slack.home(REQUESTER) or {}) or None,
        what="the Home showing it cancelled",
    )
    assert button_values(world.slack.home(REQUESTER) or {}, ids.CANCEL_ACTION) == []


def test_the_requester_does_not_see_their_own_request_to_approve(database_url, tmp_path):
    """Four eyes on the Home tab too: an approver who asked sees it under their requests, not
    as waiting for their approval."""
    settings = {"DATABASE_URL": database_url, "REQUESTERS": "*"}
    with World(database_path=tmp_path / "unused.db", settings=settings) as world:
        world.driver.ask(APPROVER, "own@example.com")
        home = world.driver.open_home(APPROVER)
        assert button_values(home, ids.APPROVE_ACTION) == []
        assert len(button_values(home, ids.CANCEL_ACTION)) == 1
        assert len(button_values(world.driver.open_home(SECOND_APPROVER), ids.APPROVE_ACTION)) == 1


def block_ids(view: dict) -> list[str]:
    return [str(b.get("block_id")) for b in view.get("blocks", [])]


def test_several_requests_on_one_home_tab_each_get_their_own_block_ids(world):
    """Slack refuses a view that repeats a block_id (FakeSlack too): with two requests
    waiting, the approver's Home is published with one row of Approve/Reject per request, each
    row its own block_id, and the requester's with one Cancel per request; a click on the
    second row acts on that request only."""
    first = world.driver.ask(REQUESTER, "alice@example.com")
    second = world.driver.ask(REQUESTER, "bob@example.org")
    third = world.driver.ask(REQUESTER, "carol@example.net")
    approver_home = world.driver.open_home(APPROVER)
    requester_home = world.driver.open_home(REQUESTER)
    assert all(c.ok for c in world.slack.calls_to("views.publish"))
    for home in (approver_home, requester_home):
        assert len(set(block_ids(home))) == len(block_ids(home))
    waiting = button_values(approver_home, ids.APPROVE_ACTION)
    assert len(waiting) == 3
    rows = [b for b in approver_home["blocks"] if b.get("type") == "actions"]
    assert [b["block_id"] for b in rows] == [f"{ids.ACTIONS_BLOCK}:{r}" for r in waiting]
    assert all(len(b["block_id"]) <= 255 for b in rows)
    cancellable = button_values(requester_home, ids.CANCEL_ACTION)
    assert sorted(cancellable) == sorted(waiting)
    assert [b for b in block_ids(requester_home) if b.startswith(ids.CANCEL_BLOCK)] == [
        f"{ids.CANCEL_BLOCK}:{r}" for r in cancellable
    ]
    # The channel message keeps its one fixed block_id.
    assert ids.ACTIONS_BLOCK in block_ids(first)
    # Clicks on the Home's second rows: routed by action_id, the request taken from the value.
    by_email = {world.services.store.get(r).email: r for r in waiting}
    world.driver.click_home(APPROVER, ids.APPROVE_ACTION, by_email["bob@example.org"])
    assert "state: succeeded" in rendered(world.driver.final_message(second))
    world.driver.open_home(REQUESTER)
    world.driver.click_home(REQUESTER, ids.CANCEL_ACTION, by_email["carol@example.net"])
    assert "Cancelled by" in rendered(world.driver.final_message(third))
    assert "state: pending" in rendered(world.slack.message(world.driver.channel, first["ts"]))
    assert [c["json"]["email"] for c in world.provider.calls if c["json"]] == ["bob@example.org"]
    assert all(c.ok for c in world.slack.calls_to("views.publish"))


def test_a_long_queue_stays_within_slacks_limits(world):
    """Thirty waiting requests: the Home stays within 100 blocks and says how many more."""
    for n in range(30):
        world.driver.ask(REQUESTER, f"user{n}@example{n}.com")
    home = world.driver.open_home(APPROVER)
    assert len(home["blocks"]) <= 100
    assert "Waiting for your approval (30)" in rendered(home)
    assert "…and 10 more waiting" in rendered(home)
    assert len(button_values(home, ids.APPROVE_ACTION)) == 20


def test_opening_the_messages_tab_publishes_nothing(world):
    """Only the Home tab is published; opening the Messages tab changes nothing."""
    reply = world.driver.transport.event(
        payloads.app_home_opened_payload(user_id=APPROVER, tab="messages")
    )
    assert reply.status == 200
    world.driver.open_home(SECOND_APPROVER)  # a later event is handled: the first was too
    assert [c.params.get("user_id") for c in world.slack.calls_to("views.publish")] == [
        SECOND_APPROVER
    ]


def test_home_over_socket_mode(tmp_path):
    """The Home tab over Socket Mode: the event arrives on the socket, the view is published."""
    with World(socket_mode=True, database_path=tmp_path / "s.db") as world:
        world.driver.ask(REQUESTER, "alice@example.com")
        home = world.driver.open_home(APPROVER)
        assert len(button_values(home, ids.APPROVE_ACTION)) == 1


def test_the_events_request_url_passes_slacks_verification(world):
    """When the Events request URL is set, Slack POSTs a signed url_verification challenge:
    the bot answers with the challenge."""
    body = json.dumps(
        {"token": payloads.VERIFICATION_TOKEN, "challenge": "c-123", "type": "url_verification"}
    ).encode()
    reply = world.driver.transport.sender.post(body, "application/json")
    assert reply.status == 200
    assert reply.text == "c-123" or reply.json() == {"challenge": "c-123"}


class HeldExecutor(Executor):
    """An executor that runs what it is given only when the test says so."""

    def __init__(self) -> None:
        self.jobs: list = []

    def submit(self, fn, /, *args, **kwargs):  # runs it later; returns no Future
        self.jobs.append((fn, args))

    def run_all(self) -> None:
        while self.jobs:
            fn, args = self.jobs.pop(0)
            fn(*args)


def test_home_refreshes_run_off_the_callers_thread_and_are_coalesced(world):
    """Three requests changing while the Home worker is busy cost each open Home one
    views.publish, not three; and nothing is published on the thread that caused them."""
    from bot.slack.home import Home

    messages = [world.driver.ask(REQUESTER, f"user{n}@example.com") for n in range(3)]
    world.driver.open_home(APPROVER)
    world.driver.open_home(REQUESTER)
    held = HeldExecutor()
    services = world.services
    home = Home(
        services.approvals, services.store, services.client, world.driver.channel, executor=held
    )
    before = len(world.slack.calls_to("views.publish"))
    for message in messages:
        [request_id] = button_values(message, ids.APPROVE_ACTION)
        home.refresh(request_id)
    assert len(world.slack.calls_to("views.publish")) == before  # nothing on this thread
    assert len(held.jobs) == 1  # one drain for all three changes
    held.run_all()
    published = world.slack.calls_to("views.publish")[before:]
    assert sorted(c.params["user_id"] for c in published) == sorted([APPROVER, REQUESTER])


def add_finished_history(world: World, count: int, start: int) -> None:
    """``count`` succeeded requests made within the last days (half of them by REQUESTER),
    written straight into the SQLite file as a long-running installation would hold them."""
    now = datetime.now(UTC)
    rows, items = [], []
    for n in range(start, start + count):
        at = (now - timedelta(days=1, seconds=n)).isoformat(timespec="microseconds")
        email = f"old{n}@example{n}.com"
        rows.append(
            (f"{n:016x}", "TICKET-0", REQUESTER if n % 2 else "U0OTHER")
            + (State.SUCCEEDED.value, at, at, at, APPROVER)
        )
        items.append((f"{n:016x}", email, f"example{n}.com", State.SUCCEEDED.value, email))
    conn = sqlite3.connect(world.database_path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO requests (id, reason, requester, state, created_at, "
            "expires_at, updated_at, decided_by) VALUES (?,?,?,?,?,?,?,?)",
            rows,
        )
        conn.executemany(
            "INSERT INTO items (request_id, position, email, domain, state, email_key) "
            "VALUES (?,0,?,?,?,?)",
            items,
        )
        conn.execute("COMMIT")
    finally:
        conn.close()


def store_steps_to_open_home(world: World, user: str) -> int:
    """SQLite virtual-machine steps (in tens) the store runs while ``user`` opens the Home."""
    steps = [0]

    def tick() -> int:
        steps[0] += 1
        return 0  # carry on

    store: Any = world.services.store
    connections = [v for v in vars(store).values() if isinstance(v, sqlite3.Connection)]

    def set_handlers(handler: Any) -> None:
        # Under the lock that guards each connection: changing a handler while another thread
        # runs a statement on it (a maintenance round) would deadlock on the GIL.
        for conn in connections:
            with store._probe_lock if conn is store._probe_conn else store._lock:
                conn.set_progress_handler(handler, 10)

    set_handlers(tick)
    try:
        world.driver.open_home(user)
    finally:
        set_handlers(None)
    return steps[0]


def test_the_home_tabs_queries_do_not_grow_with_the_stores_history(tmp_path):
    """The Home's queries read a bounded number of rows: opening an approver's and a
    requester's Home costs the store the same work (SQLite's VM steps, counted) with 400 or
    2,400 finished requests in the last 30 days; the counts stop at 100 ("100+")."""
    with World(database_path=tmp_path / "bot.db") as world:
        world.driver.ask(REQUESTER, "alice@example.com")  # one waiting request
        add_finished_history(world, 400, start=0)
        small = {u: store_steps_to_open_home(world, u) for u in (APPROVER, REQUESTER)}
        add_finished_history(world, 2000, start=400)
        large = {u: store_steps_to_open_home(world, u) for u in (APPROVER, REQUESTER)}
        for user in (APPROVER, REQUESTER):
            assert large[user] <= small[user] * 1.1 + 20, (user, small, large)
        home = rendered(world.driver.open_home(REQUESTER))
        assert "Your requests, last 30 days (100+)" in home
        assert "…and 85+ more of yours" in home
        approver_home = rendered(world.driver.open_home(APPROVER))
        assert "Waiting for your approval (1)" in approver_home
        assert "…and 90+ more decisions" in approver_home
