"""The project's tasks: each kind the Django interface lets a backend support."""

from __future__ import annotations

import asyncio

from conveyor_django.compat import SOURCE

if SOURCE == "django.tasks":
    from django.tasks import task
else:
    from django_tasks import task


@task
def add(a: int, b: int) -> int:
    return a + b


@task(queue_name="mail", priority=50)
def send_mail(to: str, subject: str = "") -> dict[str, str]:
    return {"sent_to": to, "subject": subject}


@task
def explode(reason: str) -> None:
    raise ValueError(f"boom: {reason}")


@task
async def double_later(n: int) -> int:
    await asyncio.sleep(0)
    return n * 2


@task(takes_context=True)
def which_attempt(context: object, tag: str) -> list[object]:
    return [tag, context.attempt, context.task_result.id]  # type: ignore[attr-defined]
