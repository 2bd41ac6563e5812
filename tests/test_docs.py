"""README.md and docs/: short README, links that stay in the repository, the reference-point picture.

The picture is docs/reference-points.svg, rendered by Graphviz from docs/reference-points.dot. It must name
every reference point and every default port of gbagw/defaults.toml, so a changed default shows up here.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from lxml import etree

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOT = ROOT / "docs" / "reference-points.dot"
SVG = ROOT / "docs" / "reference-points.svg"
SVG_NS = "{http://www.w3.org/2000/svg}"
REFERENCE_POINTS = ("Ub", "Zh", "Zn", "Ua", "Diameter", "Nbsp_GBA", "SOAP", "MEF", "TLS-PSK", "MAF")
# Inline links and images: [text](target) and ![alt](target); an optional "title" after the target.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def _markdown_files() -> list[Path]:
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


def _prose(text: str) -> str:
    """The text outside fenced code blocks and inline code spans, where links are links."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", text)


def _links(path: Path) -> list[str]:
    return LINK.findall(_prose(path.read_text(encoding="utf-8")))


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation other than '-' and '_' dropped, spaces as '-'."""
    anchors = set()
    for line in _prose(path.read_text(encoding="utf-8")).splitlines():
        heading = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            anchors.add(re.sub(r"[^\w\- ]", "", heading.group(1).lower()).replace(" ", "-"))
    return anchors


def test_readme_is_at_most_1500_words() -> None:
    words = len(README.read_text(encoding="utf-8").split())
    assert words <= 1500, f"README.md has {words} words: move detail into docs/"


def test_readme_links_stay_in_the_repository() -> None:
    for target in _links(README):
        assert not re.match(r"[a-z][a-z0-9+.-]*:", target, re.I), f"README.md links outside: {target}"
        assert not target.startswith(("/", "..")), f"README.md links outside: {target}"
    assert "../" not in README.read_text(encoding="utf-8"), "README.md points outside the repository"


@pytest.mark.parametrize("path", _markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves_inside_the_repository(path: Path) -> None:
    links = _links(path)
    for target in links:
        if re.match(r"https?:", target):
            continue  # only docs/ may cite a spec or an upstream page; the README test refuses these
        assert not re.match(r"[a-z][a-z0-9+.-]*:", target, re.I), f"{path.name}: unexpected link {target}"
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        assert resolved.is_relative_to(ROOT), f"{path.name}: {target} leaves the repository"
        assert resolved.exists(), f"{path.name}: {target} does not exist"
        if anchor and resolved.suffix == ".md":
            assert anchor in _anchors(resolved), f"{path.name}: no heading for #{anchor} in {resolved.name}"


def test_readme_shows_the_picture() -> None:
    assert "docs/reference-points.svg" in _links(README)


def _svg_texts(svg: str) -> list[str]:
    """The SVG's text labels; parsing fails on anything that is not well-formed XML."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.fromstring(svg.encode(), parser)
    assert root.tag == f"{SVG_NS}svg"
    return [t.text or "" for t in root.iter(f"{SVG_NS}text")]


def _default_ports() -> dict[str, int]:
    defaults = tomllib.loads((ROOT / "gbagw" / "defaults.toml").read_text(encoding="utf-8"))
    return {
        f"{section}.{key}": value
        for section, table in defaults.items()
        for key, value in table.items()
        if key == "port" or key.endswith("_port")
    }


def test_picture_is_svg_naming_every_reference_point_and_default_port() -> None:
    texts = " ".join(_svg_texts(SVG.read_text(encoding="utf-8")))
    for name in REFERENCE_POINTS:
        assert name in texts, f"reference point {name} missing from {SVG.name}"
    ports = _default_ports()
    assert len(ports) >= 14  # every listener and peer port of the four services
    for key, port in ports.items():
        assert re.search(rf":{port}\b", texts), f"{key} = {port} missing from {SVG.name}"
    # The ports named in the README's own words match the defaults too.
    readme = README.read_text(encoding="utf-8")
    for key in ("bsf.ub_port", "bsf.zn_port", "hss.zh_port", "naf.port", "bsf.sbi_port", "bsf.soap_port"):
        assert str(ports[key]) in readme, f"README.md does not give {key} = {ports[key]}"


def test_picture_is_rendered_from_its_source() -> None:
    dot = shutil.which("dot")
    if dot is None:
        pytest.skip("graphviz not installed: apt-get install -y graphviz")
    rendered = subprocess.run([dot, "-Tsvg", str(DOT)], check=True, capture_output=True, text=True, timeout=60).stdout
    assert sorted(_svg_texts(rendered)) == sorted(_svg_texts(SVG.read_text(encoding="utf-8"))), (
        f"{SVG.name} is stale: dot -Tsvg docs/reference-points.dot -o docs/reference-points.svg"
    )


def test_license_is_mit_as_the_package_declares() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == "MIT"
    license_text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert license_text.startswith("MIT License")
    assert "gbagw contributors" in license_text
    assert project["requires-python"].removeprefix(">=") in README.read_text(encoding="utf-8")
