"""Imports every domain's models so that Alembic and the tests see the whole schema."""

from app.actions import models as actions_models  # noqa: F401
from app.api import models as api_models  # noqa: F401
from app.audit import models as audit_models  # noqa: F401
from app.auth import models as auth_models  # noqa: F401
from app.auth import sessions as auth_sessions  # noqa: F401
from app.chains import models as chains_models  # noqa: F401
from app.launches import models as launches_models  # noqa: F401
from app.monitoring import models as monitoring_models  # noqa: F401
from app.panda import models as panda_models  # noqa: F401
from app.prodrequests import models as prodrequests_models  # noqa: F401
from app.stats import models as stats_models  # noqa: F401
from app.sync import models as sync_models  # noqa: F401
from app.tasks import models as tasks_models  # noqa: F401
from app.tokens import models as token_models  # noqa: F401
