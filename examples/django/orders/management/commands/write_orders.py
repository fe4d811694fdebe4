"""Writes orders through the ORM until told to stop: the load an application
version puts on the table while sluice migrates it.

Every row keeps one invariant in either shape, which the test checks by SQL
afterwards: the e-mail is `<note>@Example.COM` (and, in the new shape,
email_lower is its lower case). Every third step updates one of this
writer's earlier rows instead of inserting.

    manage.py write_orders --tag old --stop-file F [--ready-file R] [--max-rows N]

Prints `inserted=N updated=M errors=E` at the end; exits 1 if any write failed.
"""
import os
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from orders.models import Order


def fields(note):
    email = note + "@Example.COM"
    if settings.APP_VERSION == 1:
        return {"note": note, "email": email}
    return {"note": note, "customer_email": email, "email_lower": email.lower()}


class Command(BaseCommand):
    help = "write orders through the ORM until --stop-file exists"

    def add_arguments(self, parser):
        parser.add_argument("--tag", required=True)
        parser.add_argument("--stop-file", required=True)
        parser.add_argument("--ready-file", default="")
        parser.add_argument("--max-rows", type=int, default=20000)
        parser.add_argument("--pause-ms", type=float, default=3)

    def handle(self, *args, **o):
        mine, inserted, updated, errors, step = [], 0, 0, 0, 0
        deadline = time.monotonic() + 120  # never outlive a broken test
        while not os.path.exists(o["stop_file"]) and inserted < o["max_rows"] and time.monotonic() < deadline:
            step += 1
            try:
                if step % 3 == 0 and mine:
                    pk = mine[(step // 3) % len(mine)]
                    Order.objects.filter(pk=pk).update(**fields(f"{o['tag']}-{pk}-u{step}"))
                    updated += 1
                else:
                    mine.append(Order.objects.create(**fields(f"{o['tag']}-{step}")).pk)
                    inserted += 1
            except Exception as e:  # noqa: BLE001 - every failure is counted and shown
                errors += 1
                print(f"write_orders {o['tag']}: {type(e).__name__}: {e}".strip(), file=sys.stderr)
            if inserted == 1 and o["ready_file"] and not os.path.exists(o["ready_file"]):
                open(o["ready_file"], "w").close()
            time.sleep(o["pause_ms"] / 1000.0)
        print(f"inserted={inserted} updated={updated} errors={errors}")
        sys.exit(1 if errors else 0)
