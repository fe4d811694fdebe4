"""Written by hand: the schema change itself is made by sluice
(migrations/002_customer_email.yaml). This only tells Django's migration
state about it; it is recorded, never run, after `sluice complete`:

    python3 manage.py migrate orders 0002 --fake
"""
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("orders", "0001_initial")]
    operations = [
        migrations.RenameField("order", "email", "customer_email"),
        migrations.AddField("order", "email_lower", models.CharField(max_length=200), preserve_default=False),
    ]
