"""Messages ending `failed` or `expired`, counted by (mailing, minute, status, error), kept by
triggers: the errors of the daily report without reading the message table.

As for the minutes (0006): PostgreSQL's statement-level triggers append one delta row per
(mailing, status, error) a statement moved into one of the two statuses; SQLite's row-level
triggers update the base rows. The minute is the statement's (PostgreSQL: its transaction's)
start. Nothing is backfilled: the report of a day before this migration shows no errors.
"""

from django.db import migrations, models

ERRORS = "('failed', 'expired')"
DELTAS = (
    "INSERT INTO mailings_messageerrorminute (mailing_id, minute, status, error, number, base)"
    " SELECT n.mailing_id, date_trunc('minute', now()), n.status, n.last_error, count(*), false"
    f" FROM {{rows}} WHERE n.status IN {ERRORS} GROUP BY n.mailing_id, n.status, n.last_error"
)
POSTGRESQL = {
    "INSERT": ("NEW TABLE AS new_rows", "new_rows n"),
    "UPDATE": (
        "OLD TABLE AS old_rows NEW TABLE AS new_rows",
        "new_rows n JOIN old_rows o ON o.id = n.id AND o.status <> n.status",
    ),
}
ADD_TO_BASE = """INSERT INTO mailings_messageerrorminute
    (mailing_id, minute, status, error, number, base)
    VALUES (NEW.mailing_id, strftime('%Y-%m-%d %H:%M:00', 'now'), NEW.status, NEW.last_error, 1, 1)
    ON CONFLICT (mailing_id, minute, status, error) WHERE base DO UPDATE SET number = number + 1;"""
SQLITE = {
    "insert": ("AFTER INSERT", f"NEW.status IN {ERRORS}"),
    "update": ("AFTER UPDATE OF status", f"OLD.status <> NEW.status AND NEW.status IN {ERRORS}"),
}


def create_triggers(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            for event, (tables, rows) in POSTGRESQL.items():
                name = f"message_error_minute_{event.lower()}"
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
                    f"CREATE TRIGGER message_error_minute_{name} {event} ON mailings_message"
                    f" FOR EACH ROW WHEN {when} BEGIN {ADD_TO_BASE} END"
                )
        else:
            raise NotImplementedError(f"message error minutes on {connection.vendor}")


def drop_triggers(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        for event in ("insert", "update"):
            if connection.vendor == "postgresql":
                cursor.execute(f"DROP TRIGGER message_error_minute_{event} ON mailings_message")
                cursor.execute(f"DROP FUNCTION message_error_minute_{event}()")
            else:
                cursor.execute(f"DROP TRIGGER message_error_minute_{event}")


class Migration(migrations.Migration):
    dependencies = [
        ("mailings", "0006_message_minutes"),
    ]

    operations = [
        migrations.CreateModel(
            name="MessageErrorMinute",
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
                ("error", models.CharField(max_length=500)),
                ("number", models.BigIntegerField(default=0)),
                ("base", models.BooleanField(default=False)),
            ],
            options={
                "indexes": [models.Index(fields=["minute"], name="message_error_minute_idx")],
                "constraints": [
                    models.UniqueConstraint(
                        condition=models.Q(("base", True)),
                        fields=("mailing_id", "minute", "status", "error"),
                        name="message_error_minute_base",
                    )
                ],
            },
        ),
        migrations.RunPython(create_triggers, drop_triggers),
    ]
