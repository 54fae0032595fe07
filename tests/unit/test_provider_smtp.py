"""The recording provider as a mail server (SMTP_PORT): a mail carrying a harness message id is one
delivery of that id by the worker that greeted it; a mail without one is refused; an outage answers
451. Real sockets, the provider's own event loop in a thread, Python's smtplib as the sender."""

from __future__ import annotations

import asyncio
import json
import smtplib
import socket
import threading
import urllib.request
from email.message import EmailMessage

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def provider(tmp_path, monkeypatch):
    from aiohttp import web

    from stack.provider.sink import make_app

    http_port, smtp_port = free_port(), free_port()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    state = {}

    async def serve():
        runner = web.AppRunner(make_app(str(tmp_path / "deliveries.jsonl"), smtp_port=smtp_port))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", http_port).start()
        state["runner"] = runner
        started.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(serve()), loop.run_forever()), daemon=True)
    thread.start()
    assert started.wait(10)
    yield http_port, smtp_port
    asyncio.run_coroutine_threadsafe(state["runner"].cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def mail(text: str, subject: str = "hello", **headers) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "app@example.org", "someone@example.org", subject
    for key, value in headers.items():
        message[key] = value
    message.set_content(text)
    return message


def send(smtp_port: int, message: EmailMessage, helo: str = "worker7") -> None:
    with smtplib.SMTP("127.0.0.1", smtp_port, local_hostname=helo, timeout=10) as client:
        client.send_message(message)


def deliveries(http_port: int) -> list[dict]:
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/deliveries", timeout=10) as answer:
        return json.load(answer)["deliveries"]


def control(http_port: int, **body) -> None:
    request = urllib.request.Request(f"http://127.0.0.1:{http_port}/control", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(request, timeout=10).close()


def test_a_mail_with_a_message_id_in_its_text_is_one_delivery_of_it(provider):
    http_port, smtp_port = provider
    send(smtp_port, mail("Your code is 1234 (ref gen_x.py_test_v-0-a1b2c3-00000042)"))
    send(smtp_port, mail("Again (ref gen_x.py_test_v-0-a1b2c3-00000042)"), helo="worker2")  # a duplicate is recorded too
    send(smtp_port, mail("Campaign", subject="ref gen_x.py_test_v-0-a1b2c3-k00000003:ann@example.org"))
    send(smtp_port, mail("Long text " + "word " * 40 + "é (ref run-7-ffee00-00000002)."))  # folded, encoded
    got = [(d["id"], d["worker"]) for d in deliveries(http_port)]
    assert got == [("gen_x.py_test_v-0-a1b2c3-00000042", "worker7"), ("gen_x.py_test_v-0-a1b2c3-00000042", "worker2"),
                   ("gen_x.py_test_v-0-a1b2c3-k00000003:ann@example.org", "worker7"),
                   ("run-7-ffee00-00000002", "worker7")]


def test_a_mail_without_an_id_is_refused_and_not_recorded(provider):
    http_port, smtp_port = provider
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(smtp_port, mail("no reference here, only a date 2026-12-03 and 12345678"))
    assert refused.value.smtp_code == 550
    assert deliveries(http_port) == []


def test_an_outage_answers_451_and_heals(provider):
    http_port, smtp_port = provider
    control(http_port, fail_rate=1.0)
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(smtp_port, mail("ref run-7-ffee00-00000001"))
    assert refused.value.smtp_code == 451
    control(http_port, fail_rate=0.0)
    send(smtp_port, mail("ref run-7-ffee00-00000001"))
    assert [d["id"] for d in deliveries(http_port)] == ["run-7-ffee00-00000001"]


def test_the_id_may_come_from_a_header(tmp_path):
    from stack.provider.sink import DeliveryLog, MailHandler, Outage

    handler = MailHandler(DeliveryLog(str(tmp_path / "d.jsonl")), Outage(), "x", "X-Ref")
    assert handler.find_id(bytes(mail("body without it", **{"X-Ref": "abc-1"}))) == "abc-1"
    assert handler.find_id(bytes(mail("body run-7-ffee00-00000001"))) is None
