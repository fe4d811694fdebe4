"""The one model, in the shape of the application version that runs
(settings.APP_VERSION): version 2 is the shape after the sluice migration
migrations/002_customer_email.yaml (email renamed to customer_email, and a
new email_lower that sluice fills for rows the old version writes)."""
from django.conf import settings
from django.db import models

if settings.APP_VERSION == 1:

    class Order(models.Model):
        email = models.CharField(max_length=200)
        note = models.CharField(max_length=200)

else:

    class Order(models.Model):
        customer_email = models.CharField(max_length=200)
        email_lower = models.CharField(max_length=200)
        note = models.CharField(max_length=200)
