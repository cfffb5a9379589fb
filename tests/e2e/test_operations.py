"""End to end over real HTTP: the request form asks what should happen (clear the stuck
verification, or resend the verification email), ``/verify-email resend EMAIL`` prefills the
resend, a choice the form does not offer is a field error, and the request message, its
thread and the requester's DMs name the operation; a resend the provider's view refuses is
closed before approval with its reason. (No POLICY_FILE here: the settings decide.)"""

from __future__ import annotations

from typing import Any

from worlds import request_of

from bot.domain.model import Operation, State
from bot.slack import ids
from bot.standins.driver import buttons, rendered
from bot.standins.world import APPROVER, REQUESTER

EMAIL = "alice@example.com"


def operation_element(view: dict[str, Any]) -> dict[str, Any]:
    block = next(b for b in view["blocks"] if b.get("block_id") == ids.OPERATION_BLOCK)
    return dict(block["element"])


def test_the_form_asks_what_should_happen_clear_by_default(world):
    """/verify-email EMAIL opens the form with the radio group: clear the stuck verification
    (chosen) or resend the verification email; submitted untouched, it asks to clear."""
    view = world.driver.modal(world.driver.command(REQUESTER, EMAIL))
    element = operation_element(view)
    assert element["type"] == "radio_buttons"
    assert [o["value"] for o in element["options"]] == ["confirm", "resend"]
    assert element["initial_option"]["value"] == "confirm"
    message = world.driver.ask(REQUESTER, "bob@example.com")
    assert request_of(world, message).operation is Operation.CONFIRM


def test_resend_command_prefills_the_resend(world):
    """/verify-email resend EMAIL acks empty and opens the form for EMAIL with the resend
    chosen; the help lists the command."""
    sent = world.driver.command(REQUESTER, "resend <mailto:alice@example.com|alice@example.com>")
    assert sent.reply.status == 200 and sent.reply.text == ""
    view = world.driver.modal(sent)
    email = next(b for b in view["blocks"] if b.get("block_id") == ids.EMAIL_BLOCK)
    assert email["element"]["initial_value"] == EMAIL
    assert operation_element(view)["initial_option"]["value"] == "resend"
    helped = world.driver.command(REQUESTER, "help")
    assert "/verify-email resend alice@example.com" in helped.reply.text


def test_a_choice_the_form_does_not_offer_is_a_field_error(world):
    """A submitted operation other than confirm or resend (a tampered payload) keeps the form
    open with an error under the operation; nothing is stored or posted."""
    view = world.driver.modal(world.driver.command(REQUESTER, EMAIL))
    reply = world.driver.submit_request(REQUESTER, view, reason="T-1", operation="delete_domain")
    assert reply.body["response_action"] == "errors"
    assert set(reply.body["errors"]) == {ids.OPERATION_BLOCK}
    assert "Choose what should happen" in reply.body["errors"][ids.OPERATION_BLOCK]
    assert world.services.store.list_requests() == []
    assert world.slack.calls_to("chat.postMessage") == []


def test_a_confirm_names_its_operation_in_message_thread_and_dms(world):
    """A confirm request: the message says "Clear the stuck verification" (and its Approve
    confirmation asks to clear); once approved the final message, the thread reply and the
    requester's DMs say the verification was cleared."""
    message = world.driver.ask(REQUESTER, EMAIL, operation="confirm")
    shown = rendered(message)
    assert "*Action:* Clear the stuck verification" in shown
    assert "Clear this verification?" in shown and "resend" not in shown.lower()
    world.driver.approve(APPROVER, message)
    final = rendered(world.driver.final_message(message))
    assert "*Cleared*" in final and "Clear the stuck verification" in final
    reply = rendered(world.driver.wait_thread_reply(message))
    assert "Verification cleared for `alice@example.com`" in reply
    told = world.driver.dm_with(REQUESTER, "the verification was cleared")
    assert "Your request to clear the stuck verification for `alice@example.com`" in told["text"]
    posted = [t for t in world.driver.dm_texts(REQUESTER) if "was posted" in t]
    assert posted and all("to clear the stuck verification" in t for t in posted)


def test_a_resend_request_names_its_operation_and_whether_the_provider_can(world):
    """Resend chosen, the provider's view allowing it: the message says "Resend the
    verification email", that the provider can resend it, and Approve's confirmation asks to
    resend; the stored request is a resend. (Nobody approves here: the stand-in's resend
    comes with another change.)"""
    world.provider.set_domain("example.com", can_resend=True)
    message = world.driver.ask(REQUESTER, EMAIL, operation="resend")
    shown = rendered(message)
    assert "*Action:* Resend the verification email" in shown
    assert "the provider can resend the email" in shown
    assert "Resend the verification email?" in shown
    assert ids.APPROVE_ACTION in buttons(message)
    assert request_of(world, message).operation is Operation.RESEND
    home = rendered(world.driver.open_home(APPROVER))
    assert "to resend the verification email" in home


def test_a_resend_the_provider_cannot_do_is_closed_before_approval(world):
    """Resend chosen, the provider's view reading canResend false: the request is closed
    before anyone approves it, the message says "Not resendable" with no buttons, nothing is
    sent to the provider, and the requester hears why."""
    world.provider.set_domain("example.com", can_resend=False)
    message = world.driver.ask(REQUESTER, EMAIL, operation="resend")
    final = world.driver.final_message(message)
    assert "*Not resendable*" in rendered(final)
    assert not buttons(final)
    [stored] = world.services.store.list_requests()  # (its message names it by no button)
    assert (stored.operation, stored.state) == (Operation.RESEND, State.REJECTED)
    assert not [c for c in world.provider.calls if c["path"].endswith("/resend")]
    told = world.driver.dm_with(REQUESTER, "closed before approval")
    assert "Your request to resend the verification email" in told["text"]
