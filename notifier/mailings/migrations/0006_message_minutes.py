"""Messages reaching a final status, counted by (mailing, minute, status), kept by triggers.

As for the counts (0002): PostgreSQL's statement-level triggers append one delta row per
(mailing, minute, status) a statement moved into a final status; SQLite's row-level triggers
update the base rows. The minute is the statement's (PostgreSQL: its transaction's) start.
"""

from django.db import migrations, models

FINAL = "('sent', 'failed', 'expired', 'cancelled')"
DELTAS = (
    "INSERT INTO mailings_messageminute (mailing_id, minute, status, number, base)"
    " SELECT n.mailing_id, date_trunc('minute', now()), n.status, count(*), false"
    f" FROM {{rows}} WHERE n.status IN {FINAL} GROUP BY n.mailing_id, n.status"
)
POSTGRESQL = {
    "INSERT": ("NEW TABLE AS new_rows", "new_rows n"),
    "UPDATE": (
        "OLD TABLE AS old_rows NEW TABLE AS new_rows",
        "new_rows n JOIN old_rows o ON o.id = n.id AND o.status <> n.status",
    ),
}
ADD_TO_BASE = """INSERT INTO mailings_messageminute (mailing_id, minute, status, number, base)
    VALUES (NEW.mailing_id, strftime('%Y-%m-%d %H:%M:00', 'now'), NEW.status, 1, 1)
    ON CONFLICT (mailing_id, minute, status) WHERE base DO UPDATE SET number = number + 1;"""
SQLITE = {
    "insert": ("AFTER INSERT", f"NEW.status IN {FINAL}"),
    "update": ("AFTER UPDATE OF status", f"OLD.status <> NEW.status AND NEW.status IN {FINAL}"),
}


def create_triggers(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            for event, (tables, rows) in POSTGRESQL.items():
                name = f"message_minute_{event.lower()}"
                cursor.execute(
                    f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$"
                    f" BEGIN {DELTAS.format(rows=rows)}; RETURN NULL; END $$"
                )
                cursor.execute(
                    f"CREATE TRIGGER {name} AFTER {event} ON mailings_message"
                    f" REFERENCING {tables} FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
                )
        elif connection.vendor == "sqlite":
            for name, (event, when) in SQLITE.items():
                cursor.execute(
                    f"CREATE TRIGGER message_minute_{name} {event} ON mailings_message"
                    f" FOR EACH ROW WHEN {when} BEGIN {ADD_TO_BASE} END"
                )
        else:
            raise NotImplementedError(f"message minutes on {connection.vendor}")


def drop_triggers(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        for event in ("insert", "update"):
            if connection.vendor == "postgresql":
                cursor.execute(f"DROP TRIGGER message_minute_{event} ON mailings_message")
                cursor.execute(f"DROP FUNCTION message_minute_{event}()")
            else:
                cursor.execute(f"DROP TRIGGER message_minute_{event}")


class Migration(migrations.Migration):
    dependencies = [
        ("mailings", "0005_mailing_send_window"),
    ]

    operations = [
        migrations.CreateModel(
            name="MessageMinute",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("mailing_id", models.BigIntegerField()),
                ("minute", models.DateTimeField()),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("pending", "Pending"),
                            ("sending", "Sending"),
                            ("sent", "Sent"),
                            ("failed", "Failed"),
                            ("expired", "Expired"),
                            ("cancelled", "Cancelled"),
                        ],
                        max_length=16,
                    ),
                ),
                ("number", models.BigIntegerField(default=0)),
                ("base", models.BooleanField(default=False)),
            ],
            options={
                "indexes": [
                    models.Index(fields=["minute", "mailing_id"], name="message_minute_idx"),
                    models.Index(
                        fields=["mailing_id", "minute"], name="message_minute_mailing_idx"
                    ),
                ],
                "constraints": [
                    models.UniqueConstraint(
                        condition=models.Q(("base", True)),
                        fields=("mailing_id", "minute", "status"),
                        name="message_minute_base",
                    )
                ],
            },
        ),
        migrations.RunPython(create_triggers, drop_triggers),
    ]
