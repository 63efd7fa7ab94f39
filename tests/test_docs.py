"""The docs say what the code does: the README stays a front door whose links lead somewhere,
every setting Coffer reads is documented, and the webhook check the user guide gives is the one
the tests verify deliveries with. (`make docs` builds the site strictly, so links between the
docs pages are checked there.)"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from tests.webhook_receiver import verify

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def section(page: str, heading: str) -> str:
    text = (DOCS / page).read_text()
    return text.split(f"\n{heading}\n", 1)[1].split("\n#", 1)[0]


def test_the_readme_is_a_front_door_under_8_kb():
    assert len((ROOT / "README.md").read_bytes()) < 8 * 1024


def test_every_link_and_image_in_the_readme_leads_to_a_file():
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#\s]+)", readme)
    local = [t for t in targets if "://" not in t]
    assert local, "the README links to the docs"
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing


def test_every_setting_coffer_reads_is_in_the_settings_table():
    sources = [*(ROOT / "config").glob("*.py"), ROOT / "gunicorn.conf.py"]
    read = {name for path in sources for name in re.findall(r'"(COFFER_\w+)"', path.read_text())}
    table = section("operations.md", "## Settings")
    undocumented = sorted(name for name in read if f"`{name}`" not in table)
    assert not undocumented


def test_the_user_guides_webhook_check_is_the_one_the_tests_use():
    webhooks = section("user-guide.md", "### Webhooks")
    snippet = webhooks.split("```python\n", 1)[1].split("```", 1)[0]
    source = inspect.getsource(verify)
    without_docstring = re.sub(r'\n    """.*?"""', "", source, count=1)
    assert without_docstring in snippet
