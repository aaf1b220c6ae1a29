"""The message's mailing loses its own index: the composite indexes all start with it, and
with one more PostgreSQL could claim a new mailing's messages through it and sort them all.

Dropped by name rather than by AlterField: on SQLite, AlterField rebuilds the table, which
drops the count triggers of migration 0002 with it.
"""

import django.db.models.deletion
from django.db import migrations, models

INDEX = "mailings_message_mailing_id_99fc3276"


class Migration(migrations.Migration):
    dependencies = [
        ("mailings", "0002_message_counts"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    f"DROP INDEX {INDEX}",
                    reverse_sql=f"CREATE INDEX {INDEX} ON mailings_message (mailing_id)",
                )
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="message",
                    name="mailing",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="messages",
                        to="mailings.mailing",
                    ),
                ),
            ],
        ),
    ]
