"""Counts of messages by (mailing, status), kept by triggers on the message table.

PostgreSQL: statement-level triggers over the transition tables append one delta row per
(mailing, status) a statement changed, whatever its size (a fan-out of a million rows or a
settlement of five hundred); appends lock nothing another writer needs. SQLite: row-level
triggers update the base rows (it runs one writer at a time anyway).
"""

from django.db import migrations, models

DELTAS = (
    "INSERT INTO mailings_messagecount (mailing_id, status, number, base)"
    " SELECT mailing_id, status, sum(delta), false FROM ({rows}) d"
    " GROUP BY mailing_id, status HAVING sum(delta) <> 0"
)
NEW = "SELECT mailing_id, status, 1 AS delta FROM new_rows"
OLD = "SELECT mailing_id, status, -1 AS delta FROM old_rows"
POSTGRESQL = {
    "INSERT": ("NEW TABLE AS new_rows", NEW),
    "UPDATE": ("OLD TABLE AS old_rows NEW TABLE AS new_rows", f"{NEW} UNION ALL {OLD}"),
    "DELETE": ("OLD TABLE AS old_rows", OLD),
}
ADD_TO_BASE = """INSERT INTO mailings_messagecount (mailing_id, status, number, base)
    VALUES ({row}.mailing_id, {row}.status, {sign}1, 1)
    ON CONFLICT (mailing_id, status) WHERE base DO UPDATE SET number = number {sign} 1;"""
SQLITE = {
    "insert": ("AFTER INSERT", ADD_TO_BASE.format(row="NEW", sign="+")),
    "update": (
        "AFTER UPDATE OF status",
        ADD_TO_BASE.format(row="NEW", sign="+") + ADD_TO_BASE.format(row="OLD", sign="-"),
    ),
    "delete": ("AFTER DELETE", ADD_TO_BASE.format(row="OLD", sign="-")),
}
BACKFILL = (
    "INSERT INTO mailings_messagecount (mailing_id, status, number, base)"
    " SELECT mailing_id, status, count(*), true FROM mailings_message GROUP BY mailing_id, status"
)


def create_triggers(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        cursor.execute(BACKFILL)
        if connection.vendor == "postgresql":
            for event, (tables, rows) in POSTGRESQL.items():
                name = f"message_count_{event.lower()}"
                cursor.execute(
                    f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$"
                    f" BEGIN {DELTAS.format(rows=rows)}; RETURN NULL; END $$"
                )
                cursor.execute(
                    f"CREATE TRIGGER {name} AFTER {event} ON mailings_message"
                    f" REFERENCING {tables} FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
                )
        elif connection.vendor == "sqlite":
            for name, (event, body) in SQLITE.items():
                when = " WHEN OLD.status <> NEW.status" if name == "update" else ""
                cursor.execute(
                    f"CREATE TRIGGER message_count_{name} {event} ON mailings_message"
                    f" FOR EACH ROW{when} BEGIN {body} END"
                )
        else:
            raise NotImplementedError(f"message counts on {connection.vendor}")


def drop_triggers(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        for event in ("insert", "update", "delete"):
            if connection.vendor == "postgresql":
                cursor.execute(f"DROP TRIGGER message_count_{event} ON mailings_message")
                cursor.execute(f"DROP FUNCTION message_count_{event}()")
            else:
                cursor.execute(f"DROP TRIGGER message_count_{event}")


class Migration(migrations.Migration):
    dependencies = [
        ("mailings", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="MessageCount",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("mailing_id", models.BigIntegerField()),
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
                    models.Index(fields=["mailing_id", "status"], name="message_count_idx")
                ],
                "constraints": [
                    models.UniqueConstraint(
                        condition=models.Q(("base", True)),
                        fields=("mailing_id", "status"),
                        name="message_count_base",
                    )
                ],
            },
        ),
        migrations.RunPython(create_triggers, drop_triggers),
    ]
