"""Drive the project as a browser would, with Django's test client; print JSON.

python drive.py order KIND...     enqueue through the order view; prints {kind: response}
python drive.py result ID...      read results through the result view; prints {id: response}
"""

import json
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "site_config.settings")

import django

django.setup()

from django.test import Client  # noqa: E402

client = Client()
command, *names = sys.argv[1:]
out = {}
for name in names:
    response = client.get(f"/{command}/{name}")
    out[name] = {"code": response.status_code, **response.json()}
print(json.dumps(out))
