"""The web UI's pages, one module per family. Reading happens server-side; changes go through
the JSON API from the pages' script, with the session cookie and a CSRF token (see
``iap.auth.cookies``). Only the sign-in, sign-up and sign-out forms post to these routes.
"""

from __future__ import annotations

from fastapi import APIRouter

from iap.web import account, admin, duplicates, gallery, people, sessions

router = APIRouter(include_in_schema=False)
# people before gallery: /gallery/{image_id} would take /gallery/people for an image's page.
for family in (sessions, people, gallery, duplicates, account, admin):
    router.include_router(family.router)
