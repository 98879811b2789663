"""A minimal project: one app with tasks, ConveyorBackend on the store CONVEYOR_TEST_URL names."""

import os

from conveyor_django.compat import SOURCE

SECRET_KEY = "test-only"
DEBUG = False
ALLOWED_HOSTS = ["testserver"]
USE_TZ = True
ROOT_URLCONF = "site_config.urls"
INSTALLED_APPS = ["conveyor_django", "shop"]
if SOURCE == "django_tasks":  # the backport is an app of its own (its system checks)
    INSTALLED_APPS.append("django_tasks")
DATABASES = {}
TASKS = {
    "default": {
        "BACKEND": "conveyor_django.ConveyorBackend",
        "QUEUES": ["default", "mail"],
        "OPTIONS": {"URL": os.environ["CONVEYOR_TEST_URL"], "MAX_ATTEMPTS": 1},
    }
}
