"""Addresses that spoof or hide are refused, saying why; domains are one whichever IDNA form is
typed.

* Quoted local parts (``"a@evil.test"@example.com``) and characters that cannot be seen or that
  reorder text (NUL, ESC, U+200B, U+202E, …) are refused, in the slash command's answer and the
  form's field error alike, naming the character.
* Domains are normalised with IDNA 2008 / UTS #46 (fullwidth letters and ``。`` map as browsers
  map them) and stored in their Unicode form: ``alice@xn--bcher-kva.example`` and
  ``alice@bücher.example`` are one email for "one open request per email" and for history, rows
  stored before in either form included; the request message shows both forms.
* The provider's v2 lookup asks for the ASCII form first, then the Unicode form, and matches a
  listed name in either.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from bot.domain.inputs import InvalidInput, other_forms, validate_email
from bot.domain.model import (
    OpenRequestExists,
    State,
    VerificationRequest,
    new_request_id,
    one_item_request,
    utcnow,
)
from bot.slack import blocks, ids
from bot.standins.provider import DOMAINS_PATH
from bot.standins.world import APPROVER, CHANNEL, REQUESTER, World

UNICODE = "alice@bücher.example"
ASCII = "alice@xn--bcher-kva.example"

REFUSED = [
    ('"a@evil.test"@example.com', "quoted part"),
    ('"alice"@example.com', "quoted part"),
    ("al\x00ice@example.com", "U+0000 NULL"),
    ("al\x1bice@example.com", "U+001B ESCAPE"),
    ("alice@exa\u200bmple.com", "U+200B ZERO WIDTH SPACE"),
    ("alice\u202e@example.com", "U+202E RIGHT-TO-LEFT OVERRIDE"),
    ("alice@example.com\u2066", "U+2066 LEFT-TO-RIGHT ISOLATE"),
    ("\ufeffalice@example.com", "U+FEFF ZERO WIDTH NO-BREAK SPACE"),
    ("al\u3164ice@example.com", "U+3164 HANGUL FILLER"),
]


# ---------------------------------------------------------------------------------------------
# The rules


@pytest.mark.parametrize(("raw", "why"), REFUSED)
def test_spoofing_and_hidden_characters_are_refused_saying_why(raw, why):
    """Each is refused with a sentence naming what is wrong (the character by its code point
    and name), and the sentence itself carries no hidden character."""
    with pytest.raises(InvalidInput) as refused:
        validate_email(raw)
    message = str(refused.value)
    assert why in message, message
    assert message.isprintable(), ascii(message)


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("alice@ｅｘａｍｐｌｅ．com", "alice@example.com"),
        ("alice@bücher。example", UNICODE),
        ("alice@BÜCHER.Example", UNICODE),
        (ASCII, UNICODE),
        ("alice@XN--BCHER-KVA.example.", UNICODE),
        ("alice@faß.de", "alice@faß.de"),  # IDNA 2008, not transitional: ß stays
        ("alice@example.com", "alice@example.com"),
    ],
)
def test_domains_are_normalised_by_idna_2008_and_uts_46(raw, normalised):
    """Fullwidth letters, the ideographic full stop, upper case and punycode all give the one
    Unicode form, as a browser maps them."""
    assert validate_email(raw) == normalised
    assert validate_email(normalised) == normalised


@pytest.mark.parametrize(
    "raw", ["alice@xn--zz.example", "alice@ex_ample.com", "alice@-bad.example", "alice@a..b"]
)
def test_a_domain_idna_refuses_gets_a_clear_answer(raw):
    """A domain IDNA refuses (a broken punycode label, a character no domain may have) is
    refused as not a valid domain name."""
    with pytest.raises(InvalidInput, match="not a valid domain name"):
        validate_email(raw)


def test_both_forms_are_shown_when_they_differ():
    """The other form of an internationalised domain is the ASCII one (and back); a plain
    domain has none; the message shows both, so a look-alike stands out."""
    assert other_forms(UNICODE) == (ASCII,)
    assert other_forms(ASCII) == (UNICODE,)
    assert other_forms("alice@example.com") == ()
    assert blocks.email_forms(UNICODE) == f"`{UNICODE}` (`{ASCII}`)"
    lookalike = validate_email("alice@exаmple.com")  # a Cyrillic а
    assert blocks.email_forms(lookalike).endswith("(`alice@xn--exmple-4nf.com`)")


def test_the_echo_of_a_refused_address_spells_out_what_was_hidden():
    """The answer repeats what was typed with each hidden character spelled out, so the
    answer itself is not reordered or hidden."""
    text = blocks.invalid_email_text("alice\u202e@example.com", "why")
    assert "\u202e" not in text
    assert "alice[U+202E RIGHT-TO-LEFT OVERRIDE]@example.com" in text


# ---------------------------------------------------------------------------------------------
# The store: one key, rows stored in either form


def stored_request(email: str, domain: str) -> VerificationRequest:
    now = utcnow()
    return one_item_request(
        id=new_request_id(),
        email=email,
        domain=domain,
        reason="TICKET-1",
        requester=REQUESTER,
        state=State.PENDING,
        created_at=now,
        expires_at=now + timedelta(hours=1),
        updated_at=now,
    )


@pytest.mark.parametrize("stored_as", [ASCII, UNICODE])
def test_a_row_stored_in_either_form_is_the_same_email(world, stored_as):
    """A request stored with its domain in either form (a row written before addresses were
    normalised may hold the punycode one) is the open request, and the history, of the other
    form too; a second open request for it is refused."""
    store = world.services.store
    first = store.create(stored_request(stored_as, stored_as.rpartition("@")[2]), actor=REQUESTER)
    for asked in (ASCII, UNICODE):
        found = store.find_open(asked)
        assert found is not None and found.id == first.id
        since = utcnow() - timedelta(days=1)
        assert [r.id for r in store.requests_about(asked, since=since)] == [first.id]
        about = store.requests_about("bob@x.example", asked.rpartition("@")[2], since=since)
        assert [r.id for r in about] == [first.id]
    with pytest.raises(OpenRequestExists) as refused:
        store.create(stored_request(UNICODE, "bücher.example"), actor=REQUESTER)
    assert refused.value.existing.id == first.id


# ---------------------------------------------------------------------------------------------
# End to end over real HTTP


def dumped(message: dict[str, Any]) -> str:
    return json.dumps(message.get("blocks", []), ensure_ascii=False)


def ask(world: World, typed: str, shown: str) -> dict[str, Any]:
    """Command, form, submit; the request message (with the provider's line) showing
    ``shown``."""
    seen = world.driver.posted()
    delivered = world.driver.command(REQUESTER, typed)
    assert delivered.reply.status == 200 and delivered.reply.text == "", delivered.reply
    view = world.driver.modal(delivered)
    reply = world.driver.submit_request(REQUESTER, view, reason="TICKET-1")
    assert reply.body in ("", None, {}), reply.body

    def find() -> dict[str, Any] | None:
        for message in world.slack.messages(CHANNEL):
            if str(message.get("ts")) not in seen and shown in dumped(message):
                return dict(message)
        return None

    message = world.slack.wait_for(find, 10, what=f"request message for {shown}")
    return world.driver.with_provider_line(message)


@pytest.mark.parametrize(("typed", "why"), REFUSED)
def test_the_slash_command_refuses_a_spoofing_address_saying_why(world, typed, why):
    """``/verify-email`` with a quoted local part, NUL, ESC, U+200B, U+202E, …: a private
    answer naming why, echoing the input with the hidden character spelled out; no form."""
    sent = world.driver.command(REQUESTER, typed)
    assert sent.reply.status == 200
    assert sent.reply.body["response_type"] == "ephemeral"
    assert why in sent.reply.text, sent.reply.text
    assert all(c == "\n" or c.isprintable() for c in sent.reply.text), ascii(sent.reply.text)
    assert not world.slack.calls_to("views.open")


@pytest.mark.parametrize(("typed", "why"), REFUSED)
def test_the_form_refuses_a_spoofing_address_saying_why(world, typed, why):
    """The same address typed into the request form: a field error naming why."""
    delivered = world.driver.command(REQUESTER, "")
    view = world.driver.modal(delivered)
    reply = world.driver.submit_request(REQUESTER, view, email=typed, reason="TICKET-1")
    assert reply.body["response_action"] == "errors"
    assert why in reply.body["errors"][ids.EMAIL_BLOCK]
    assert not world.slack.messages(CHANNEL)


@pytest.mark.parametrize(
    ("typed", "canonical"),
    [("alice@ｅｘａｍｐｌｅ．com", "alice@example.com"), ("alice@bücher。example", UNICODE)],
)
def test_the_command_normalises_the_domain_as_a_browser_does(world, typed, canonical):
    """``/verify-email alice@ｅｘａｍｐｌｅ．com`` (or ``bücher。example``) opens the form for the
    normalised address, and the request is made for it."""
    delivered = world.driver.command(REQUESTER, typed)
    assert delivered.reply.text == "", delivered.reply.text
    view = world.driver.modal(delivered)
    email_block = next(b for b in view["blocks"] if b.get("block_id") == ids.EMAIL_BLOCK)
    assert email_block["element"]["initial_value"] == canonical
    world.driver.submit_request(REQUESTER, view, reason="TICKET-1")
    stored = world.slack.wait_for(
        lambda: world.services.store.find_open(canonical), 10, what="the stored request"
    )
    assert stored.email == canonical


def test_an_idn_and_its_punycode_are_one_email(world):
    """While ``alice@bücher.example`` is open, asking for ``alice@xn--bcher-kva.example`` (by
    command or by the form) is refused as the same email; its status answers for both; the
    request message shows both forms."""
    message = ask(world, UNICODE, UNICODE)
    text = dumped(message)
    assert f"*Email:* `{UNICODE}` (`{ASCII}`)" in text, text
    assert "*Domain:* `bücher.example` (`xn--bcher-kva.example`)" in text, text

    sent = world.driver.command(REQUESTER, ASCII)
    assert sent.reply.text == ""
    answer = world.driver.answer(sent)
    assert "already has an open request" in answer, answer
    assert f"`{UNICODE}` (`{ASCII}`)" in answer

    delivered = world.driver.command(REQUESTER, "")
    view = world.driver.modal(delivered)
    reply = world.driver.submit_request(REQUESTER, view, email=ASCII, reason="again")
    assert reply.body["response_action"] == "errors"
    assert "already has an open request" in reply.body["errors"][ids.EMAIL_BLOCK]

    status = world.driver.command(REQUESTER, f"status {ASCII}")
    said = world.driver.answer(status)
    assert "is pending" in said, said
    opened = [r for r in world.services.store.list_requests() if r.state is State.PENDING]
    assert len(opened) == 1 and opened[0].email == UNICODE


def test_the_lookup_finds_a_domain_the_provider_lists_by_its_ascii_form(world):
    """The provider lists the domain by its punycode name only: the lookup asks for the ASCII
    form first and shows the provider's state."""
    world.provider.unknown_domains.add("bücher.example")
    message = ask(world, UNICODE, UNICODE)
    assert "could not read" not in dumped(message)
    assert "*pending*" in dumped(message)
    lists = [c["query"] for c in world.provider.view_calls if c["path"] == DOMAINS_PATH]
    assert lists == [{"name": ["xn--bcher-kva.example"]}]


def test_the_lookup_finds_a_domain_the_provider_lists_by_its_unicode_form(world):
    """The provider lists the domain by its Unicode name only: after the ASCII form finds
    nothing, the lookup asks for the Unicode form and shows the provider's state."""
    world.provider.unknown_domains.add("xn--bcher-kva.example")
    message = ask(world, ASCII, UNICODE)
    assert "could not read" not in dumped(message)
    assert "*pending*" in dumped(message)
    lists = [c["query"] for c in world.provider.view_calls if c["path"] == DOMAINS_PATH]
    assert lists == [{"name": ["xn--bcher-kva.example"]}, {"name": ["bücher.example"]}]


def test_approving_an_idn_request_sends_the_normalised_address(world):
    """The provider is called once, with the address in its normalised form."""
    message = ask(world, "alice@BÜCHER。example", UNICODE)
    world.driver.approve(APPROVER, message)
    final = world.driver.final_message(message)
    assert "state: succeeded" in dumped(final)
    confirms = [c for c in world.provider.calls if c["path"].endswith("/confirmed")]
    assert [c["json"]["email"] for c in confirms] == [UNICODE]
