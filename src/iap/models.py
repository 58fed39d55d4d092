"""Imports every domain's tables so that the metadata (and Alembic) sees all of them."""


def load_all_models() -> None:
    from iap.analysis import models as analysis_models  # noqa: F401
    from iap.auth import models as auth_models  # noqa: F401
    from iap.events import models as event_models  # noqa: F401
    from iap.finding import models as finding_models  # noqa: F401
    from iap.images import models as image_models  # noqa: F401
    from iap.people import models as people_models  # noqa: F401
