"""Send an SMS from Airflow callbacks: failures, successes, SLA misses and deadline alerts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseNotifier

from airflow_provider_easify.exceptions import EasifyError, EasifySendUnconfirmedError
from airflow_provider_easify.hooks.easify import EasifyHook
from airflow_provider_easify.notifications.default_texts import default_text, state_of
from airflow_provider_easify.utils.phone import mask_phone

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context



class EasifySmsNotifier(BaseNotifier):
    """
    Send an SMS when a callback fires, e.g. ``on_failure_callback=EasifySmsNotifier(...)``.

    :param from_number: One of the account's numbers. Templated.
    :param to_number: A number or a list of numbers (E.164, or national with ``country_code``). Templated.
    :param message: The text; templated with the context of wherever Airflow calls the notifier (a
        task or DAG callback, a Deadline Alert's ``AsyncCallback``, a human-in-the-loop task's
        ``notifiers=``). By default it names what a person needs there (see
        :mod:`~airflow_provider_easify.notifications.default_texts`); that text is also
        ``easify_default_text`` in the context, e.g. ``"{{ easify_default_text }} On call: Bob"``.
    :param country_code: Country code for national numbers. Templated.
    :param easify_conn_id: The Easify connection.
    """

    template_fields = ("from_number", "to_number", "message", "country_code", "easify_conn_id")

    def __init__(
        self,
        from_number: str,
        to_number: str | Sequence[str],
        message: str | None = None,
        country_code: str | None = None,
        easify_conn_id: str = EasifyHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.from_number = from_number
        self.to_number = to_number
        self.message = message
        self._message_template = message
        self.country_code = country_code
        self.easify_conn_id = easify_conn_id

    def render_template_fields(self, context: Context, jinja_env: Any = None) -> None:
        ctx: Any = context
        ctx["easify_state"] = state_of(context)
        hitl = _hitl_request(context)
        if hitl is not None:
            ctx.update(hitl)
        # Built in Python, never rendered as a template: names in it (a run id, a subject) stay as they are.
        ctx["easify_default_text"] = default_text(context, hitl)
        self.message = self._message_template  # one notifier may serve several callbacks: render afresh
        # Airflow 3.0's BaseNotifier reads context["dag"], which a Deadline Alert's context lacks.
        borrowed_dag = "dag" not in ctx
        if borrowed_dag:
            ctx["dag"] = None
        try:
            super().render_template_fields(context, jinja_env)
        finally:
            if borrowed_dag:
                del ctx["dag"]
        if self.message is None:
            self.message = ctx["easify_default_text"]

    def notify(self, context: Context) -> None:
        hook = EasifyHook(easify_conn_id=self.easify_conn_id)
        outcomes: list[str | EasifyError] = []
        for number in self._numbers():
            try:
                outcomes.append(hook.send_sms(self.from_number, number, self.message, country_code=self.country_code))
            except EasifyError as exc:
                outcomes.append(exc)
        self._report(outcomes)

    async def async_notify(self, context: Context) -> None:
        """Send from the triggerer (Deadline Alerts, async callbacks): every wait for budget and every
        backoff is an ``asyncio.sleep`` on the event loop (:mod:`..utils.triggerer_sends`)."""
        from airflow_provider_easify.hooks.easify import EasifyTriggerHook
        from airflow_provider_easify.utils.triggerer_sends import send_sms_on_the_loop

        hook = EasifyTriggerHook(easify_conn_id=self.easify_conn_id)
        outcomes: list[str | EasifyError] = []
        for number in self._numbers():
            try:
                outcomes.append(await send_sms_on_the_loop(
                    self.easify_conn_id, self.from_number, number, self.message or "",
                    country_code=self.country_code, hook=hook,
                ))
            except EasifyError as exc:
                outcomes.append(exc)
        self._report(outcomes)

    def _numbers(self) -> list[str]:
        return [self.to_number] if isinstance(self.to_number, str) else list(self.to_number)

    def _report(self, outcomes: list[str | EasifyError]) -> None:
        """Log each sent SMS; raise for those not sent, or unconfirmed (never posted again blindly)."""
        numbers = self._numbers()
        failures, unconfirmed = [], []
        for number, outcome in zip(numbers, outcomes):
            if isinstance(outcome, EasifySendUnconfirmedError):
                unconfirmed.append(str(outcome))
            elif isinstance(outcome, EasifyError):
                failures.append(f"{mask_phone(number)}: {outcome}")
            else:
                self.log.info("Notification SMS %s sent to %s", outcome, mask_phone(number))
        if unconfirmed:
            raise EasifySendUnconfirmedError(
                f"Notification SMS unconfirmed for {len(unconfirmed)} of {len(numbers)} (not posted again): "
                + "; ".join(unconfirmed + failures)
            )
        if failures:
            raise EasifyError(f"Notification SMS not sent to {len(failures)} of {len(numbers)}: {'; '.join(failures)}")



send_easify_sms_notification = EasifySmsNotifier


def _hitl_request(context: Context) -> dict[str, str] | None:
    """The subject and Required Actions link when the task is a human-in-the-loop one (Airflow 3.1+)."""
    try:
        from airflow.providers.standard.operators.hitl import HITLOperator
    except Exception:  # noqa: BLE001 - no human-in-the-loop on this Airflow
        return None
    task = context.get("task")
    if not isinstance(task, HITLOperator):
        return None
    try:
        link = HITLOperator.generate_link_to_ui_from_context(context=context)
    except ValueError:  # no [api] base_url: the subject alone
        link = ""
    return {"easify_hitl_subject": str(task.subject), "easify_hitl_link": link}
