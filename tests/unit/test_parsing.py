"""Pure logic: parsing what people type after /verify-email, validating what they give, and
the state machine's transitions as the design lists them."""

from __future__ import annotations

import pytest

from bot.domain.inputs import InvalidInput, validate_email, validate_reason
from bot.domain.model import TRANSITIONS, Operation, State, can_transition
from bot.slack.listeners.parsing import parse_command_text


@pytest.mark.parametrize(
    ("text", "email"),
    [
        ("alice@example.com", "alice@example.com"),
        ("  alice@Example.COM  ", "alice@example.com"),
        ("<mailto:alice@example.com|alice@example.com>", "alice@example.com"),
        (
            "<mailto:bob.smith+tag@mail.example.co.uk|bob.smith+tag@mail.example.co.uk>",
            "bob.smith+tag@mail.example.co.uk",
        ),
        ("<mailto:a|b@x.example|a|b@x.example>", "a|b@x.example"),
        ("o'brien@example.ie", "o'brien@example.ie"),
        ("a&amp;b@example.com", "a&b@example.com"),
        ("<mailto:a&amp;b@example.com|a&amp;b@example.com>", "a&b@example.com"),
        ("<alice@example.com>", "alice@example.com"),
        ("user@bücher.de", "user@bücher.de"),
        # One email whichever form Slack sends: the domain is kept in its Unicode form.
        ("x@xn--bcher-kva.de", "x@bücher.de"),
    ],
)
def test_command_text_as_slack_sends_it(text, email):
    """Any valid address works whether Slack sends it plain, escaped or wrapped in <mailto:|>."""
    parsed = parse_command_text(text)
    assert parsed.error is None
    assert parsed.email == email


def test_command_text_reason_follows_email():
    """Words after the address prefill the reason."""
    parsed = parse_command_text("<mailto:a@example.com|a@example.com> TICKET-9 &lt;urgent&gt;")
    assert parsed.email == "a@example.com"
    assert parsed.reason == "TICKET-9 <urgent>"


@pytest.mark.parametrize("text", ["", "   ", None])
def test_empty_command_opens_empty_form(text):
    """No text means an empty form: no email, no error, not help."""
    parsed = parse_command_text(text)
    assert (parsed.email, parsed.error, parsed.help) == (None, None, False)


@pytest.mark.parametrize("text", ["help", "HELP", "--help"])
def test_help(text):
    """`help` asks for usage."""
    assert parse_command_text(text).help


@pytest.mark.parametrize(
    "text",
    [
        "alice",
        "alice@",
        "@example.com",
        "alice@localhost",
        "alice@exa_mple.com",
        "<http://example.com|example.com>",
        "a@b@c",
        "alice@example.123",
        "a..b@example.com",
        "alice@-example.com",
        "x" * 65 + "@example.com",
        "<!channel>",
    ],
)
def test_not_an_email(text):
    """Text that is not an email gets an error message, never an email."""
    parsed = parse_command_text(text)
    assert parsed.email is None
    assert parsed.error


def test_reason_validation():
    """A reason is required and bounded."""
    assert validate_reason("  TICKET-1 ") == "TICKET-1"
    with pytest.raises(InvalidInput):
        validate_reason("   ")
    with pytest.raises(InvalidInput):
        validate_reason("x" * 501)


def test_email_validation_length():
    """Addresses longer than 254 characters are refused."""
    with pytest.raises(InvalidInput):
        validate_email("a@" + "b" * 250 + ".com")


def test_state_machine_matches_design():
    """The transitions are exactly those of docs/states.md."""
    allowed = {(s, d) for s, ds in TRANSITIONS.items() for d in ds}
    assert allowed == {
        (State.PENDING, State.EXECUTING),
        (State.PENDING, State.REJECTED),
        (State.PENDING, State.EXPIRED),
        (State.PENDING, State.CANCELLED),
        (State.EXECUTING, State.SUCCEEDED),
        (State.EXECUTING, State.FAILED),
        (State.EXECUTING, State.UNKNOWN),
        (State.UNKNOWN, State.EXECUTING),
        (State.UNKNOWN, State.RESOLVED),
    }
    assert not can_transition(State.SUCCEEDED, State.EXECUTING)


def test_resend_prefills_the_form_with_the_resend() -> None:
    """``resend EMAIL [reason…]`` is the form for EMAIL with the resend chosen (however Slack
    wraps the address); ``resend`` alone an empty one; ``resend help`` or ``resend status x``
    name no address to resend for; an address alone stays a confirm."""
    parsed = parse_command_text("resend <mailto:a@b.example|a@b.example> ZD-1 again")
    assert (parsed.email, parsed.reason, parsed.operation) == (
        "a@b.example",
        "ZD-1 again",
        Operation.RESEND,
    )
    assert parse_command_text("RESEND").operation is Operation.RESEND
    assert parse_command_text("resend").email is None
    for text in ("resend help", "resend status a@b.example", "resend resend a@b.example"):
        wrong = parse_command_text(text)
        assert wrong.error and not wrong.help and not wrong.status, text
    assert parse_command_text("a@b.example").operation is Operation.CONFIRM
    assert parse_command_text("resend nope").error
