"""Settings of the sluice Django example (see README.md).

Everything about the database comes from the environment, so one checkout
serves as both application versions and as the admin running `migrate`:

  SHOP_DB_NAME, SHOP_DB_HOST, SHOP_DB_PORT, SHOP_DB_USER  where the database is
  SHOP_APP_VERSION   1 (old model) or 2 (new model: the shape after 002_customer_email)
  SHOP_DB_VERSION    the sluice version this application version reads and
                     writes through while the migration is in flight; unset:
                     the base tables (and always for `manage.py migrate`,
                     which must find django_migrations in the base schema)
"""
import os

SECRET_KEY = "sluice-example-not-secret"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = ["orders"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
APP_VERSION = int(os.environ.get("SHOP_APP_VERSION", "1"))

_db = {
    "ENGINE": "django.db.backends.postgresql",
    "NAME": os.environ.get("SHOP_DB_NAME", "shop"),
    "HOST": os.environ.get("SHOP_DB_HOST", "127.0.0.1"),
    "PORT": os.environ.get("SHOP_DB_PORT", "5432"),
    "USER": os.environ.get("SHOP_DB_USER", "app"),
    # Persistent connections: the options below are applied by the server
    # when a connection is opened, so they hold for its whole life.
    "CONN_MAX_AGE": None,
}
_version = os.environ.get("SHOP_DB_VERSION", "")
if _version:
    # What `sluice version-sql <version>` says for PostgreSQL, as libpq
    # connection options (docs/orms.md).
    _db["OPTIONS"] = {
        "options": f"-c search_path=public_{_version},public -c sluice.version={_version}"
    }
DATABASES = {"default": _db}
