"""The task page shows related tasks a page at a time: the first 50 siblings and a link to the bunch."""

import re

from sqlalchemy import select

from app.tasks import services
from app.tasks.models import Task
from tests.tasks.conftest import sim_definition


def test_the_task_page_shows_50_siblings_and_links_the_bunch_for_the_rest(client, login_as, db):
    user = login_as("manager")
    bunch = services.create_bunch(sim_definition(bunch_size=53), user, "k", is_admin=False).bunch
    db.session.commit()
    first = db.session.scalar(select(Task).where(Task.bunch_id == bunch.id, Task.bunch_index == 1))
    html = client.get(f"/tasks/{first.id}").get_data(as_text=True)
    siblings = re.search(r'id="siblings">(.*?)</dd>', html, re.S).group(1)
    names = re.findall(r">(PROD2025-008\.SIM\.\d+)</a>", siblings)
    assert names == [f"PROD2025-008.SIM.{i}" for i in range(2, 52)]  # the first 50 others, in order
    assert f'<a href="/tasks/bunch/{bunch.id}">all</a>' in siblings
    assert re.search(r'id="children">—</dd>', html) and re.search(r'id="clones">—</dd>', html)
