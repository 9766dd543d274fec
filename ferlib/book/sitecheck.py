"""Check a built book site: links, anchors and figures resolve, and pages render in Chromium.

``python -m ferlib.book.sitecheck _build/html [--chromium auto|always|never] [--screenshot index.png]``

Always (pure Python): ``index.html`` exists; every internal ``href``/``src`` of every page points
to an existing file inside the site, and a ``#fragment`` on a link to a page names an ``id``
there; every chapter page (``book/NN_*.html``) shows at least one image that exists; no prose
holds a MyST role that was not rendered (such as a glue role inside backticks). With
Chromium (found on PATH, or ``--chromium always``): the index and each chapter, rendered
headless, still have their ``<h1>`` and their images. Prints one line per page and exits 1
listing every problem.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

CHAPTER_PAGE = re.compile(r"^book/\d\d_[^/]*\.html$")
# Attributes that load or link a resource; (tag, attribute).
_LINKS = {("a", "href"), ("link", "href"), ("img", "src"), ("script", "src"), ("source", "src"), ("iframe", "src")}
# Sphinx's folders of assets (theme templates there end in .html too) and page sources.
_NOT_PAGES = {"_static", "_sources", "_images"}
_EXTERNAL = ("http:", "https:", "mailto:", "data:", "javascript:", "tel:", "ftp:", "//")
# A MyST role that reached the page as text (e.g. a glue role wrapped in backticks renders raw).
RAW_ROLE = re.compile(r"\{(?:glue|cite|ref|doc|numref|eq|term|download)(?::[a-z]+)?\}")
# Text inside these elements is code or machinery, where role syntax may legitimately appear;
# inline <code> is prose's code span, flagged only when it holds nothing but a role's prefix.
_VERBATIM = {"pre", "script", "style", "textarea"}


class _PageParser(HTMLParser):
    """Collects a page's ids, links, image sources and ``<h1>`` texts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[tuple[str, str]] = []  # (tag, url)
        self.images: list[str] = []
        self.headings: list[str] = []
        self.redirect: str | None = None  # the url of a <meta http-equiv="refresh">
        self.raw_roles: list[str] = []  # prose that still holds MyST role syntax
        self._h1_depth = 0
        self._h1_text: list[str] = []
        self._verbatim_depth = 0
        self._code_depth = 0

    def handle_starttag(self, tag, attrs):
        if tag in _VERBATIM:
            self._verbatim_depth += 1
        if tag == "code":
            self._code_depth += 1
        attributes = dict(attrs)
        if attributes.get("id"):
            self.ids.add(attributes["id"])
        if tag == "a" and attributes.get("name"):
            self.ids.add(attributes["name"])
        for attribute in ("href", "src"):
            url = attributes.get(attribute)
            if (tag, attribute) in _LINKS and url is not None:
                self.links.append((tag, url.strip()))
        if tag == "meta" and (attributes.get("http-equiv") or "").lower() == "refresh":
            match = re.search(r"url\s*=\s*['\"]?([^'\"]+)", attributes.get("content") or "", re.IGNORECASE)
            if match:
                self.redirect = match.group(1).strip()
                self.links.append(("meta refresh", self.redirect))
        if tag == "img" and attributes.get("src"):
            self.images.append(attributes["src"].strip())
        if tag == "h1":
            self._h1_depth += 1
            self._h1_text = []

    def handle_endtag(self, tag):
        if tag in _VERBATIM and self._verbatim_depth:
            self._verbatim_depth -= 1
        if tag == "code" and self._code_depth:
            self._code_depth -= 1
        if tag == "h1" and self._h1_depth:
            self._h1_depth -= 1
            self.headings.append(_heading(" ".join(self._h1_text)))

    def handle_data(self, data):
        if not self._verbatim_depth:
            role = RAW_ROLE.fullmatch(data.strip()) if self._code_depth else RAW_ROLE.search(data)
            if role:
                self.raw_roles.append(" ".join(data.split())[:80])
        if self._h1_depth:
            self._h1_text.append(data)


def _heading(text: str) -> str:
    """An ``<h1>``'s text without whitespace runs and Sphinx's ``#`` permalink."""
    return " ".join(text.replace("\N{PILCROW SIGN}", " ").split()).removesuffix(" #").strip()


def parse_page(html: str) -> _PageParser:
    parser = _PageParser()
    parser.feed(html)
    parser.close()
    return parser


@dataclass
class PageReport:
    path: str  # relative to the site, with /
    links: int = 0
    images: int = 0
    problems: list[str] = field(default_factory=list)
    rendered: str = ""  # what the Chromium check found, if it ran


@dataclass
class SiteReport:
    site: Path
    pages: list[PageReport]
    problems: list[str]  # every problem, "page: what"

    @property
    def ok(self) -> bool:
        return not self.problems


def _is_internal(url: str) -> bool:
    return bool(url) and not url.startswith("#") and not url.lower().startswith(_EXTERNAL)


def _resolve(site: Path, page: Path, url: str) -> tuple[Path | None, str]:
    """The file ``url`` on ``page`` points to (None if outside the site) and its fragment."""
    parts = urlsplit(url)
    if parts.scheme or parts.netloc:
        return None, ""
    path = unquote(parts.path)
    if not path:  # "?query" or "#fragment" on this page
        return page, unquote(parts.fragment)
    target = (site / path.lstrip("/")) if path.startswith("/") else (page.parent / path)
    if path.endswith("/") or target.is_dir():
        target = target / "index.html"
    target = Path(os.path.normpath(target))
    if not target.is_relative_to(site):
        return None, parts.fragment
    return target, unquote(parts.fragment)


def check_static(site: str | Path) -> SiteReport:
    """The pure-Python checks of every HTML page under ``site``."""
    site = Path(site).resolve()
    pages: dict[Path, _PageParser] = {}
    for path in sorted(site.rglob("*.html")):
        if path.relative_to(site).parts[0] in _NOT_PAGES:
            continue
        pages[path] = parse_page(path.read_text(encoding="utf-8", errors="replace"))
    problems: list[str] = []
    if not (site / "index.html").is_file():
        problems.append("index.html: missing")
    reports = []
    for path, parsed in pages.items():
        name = path.relative_to(site).as_posix()
        report = PageReport(name)
        for tag, url in parsed.links:
            if not _is_internal(url):
                continue
            report.links += 1
            target, fragment = _resolve(site, path, url)
            if target is None:
                report.problems.append(f"link {url!r} points outside the site")
            elif not target.is_file():
                report.problems.append(f"broken {tag} {url!r}: no {target.relative_to(site).as_posix()}")
            elif fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else parse_page(target.read_text(errors="replace")).ids
                if fragment not in ids:
                    report.problems.append(f"link {url!r}: no id {fragment!r} in {target.relative_to(site).as_posix()}")
        existing = 0
        for src in parsed.images:
            if src.startswith("data:"):
                existing += 1
            elif _is_internal(src):
                target, _ = _resolve(site, path, src)
                existing += target is not None and target.is_file()
        report.images = existing
        if CHAPTER_PAGE.match(name) and existing == 0:
            report.problems.append("a chapter page without any image (figures missing?)")
        if CHAPTER_PAGE.match(name) and not parsed.headings:
            report.problems.append("a chapter page without an <h1>")
        for text in parsed.raw_roles:
            report.problems.append(f"unrendered MyST role in the prose: {text!r}")
        problems.extend(f"{name}: {problem}" for problem in report.problems)
        reports.append(report)
    return SiteReport(site, reports, problems)


def find_chromium() -> str | None:
    """The Chromium (or Chrome) executable on PATH, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _chromium(executable: str, arguments: list[str], timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="ferlib-sitecheck-") as profile:
        command = [
            executable,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            f"--user-data-dir={profile}",
            *arguments,
        ]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def render_dom(executable: str, page: Path, timeout: float = 60) -> str:
    """The DOM of ``page`` after headless Chromium has loaded it and run its scripts."""
    done = _chromium(executable, ["--virtual-time-budget=5000", "--dump-dom", page.as_uri()], timeout)
    if done.returncode != 0 or "<" not in done.stdout:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"chromium exited {done.returncode}: {last}")
    return done.stdout


def screenshot(executable: str, page: Path, out: Path, timeout: float = 60) -> Path:
    """Save a 1280x1600 screenshot of ``page`` to ``out`` (PNG)."""
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    arguments = ["--hide-scrollbars", "--window-size=1280,1600", f"--screenshot={out}", page.as_uri()]
    done = _chromium(executable, arguments, timeout)
    if not out.is_file():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"chromium wrote no screenshot (exit {done.returncode}): {last}")
    return out


def landing_page(site: Path, page: Path) -> Path:
    """``page``, or the page its ``<meta http-equiv="refresh">`` sends the reader to (Jupyter Book's index)."""
    parsed = parse_page(page.read_text(encoding="utf-8", errors="replace"))
    if parsed.redirect and _is_internal(parsed.redirect):
        target, _ = _resolve(site, page, parsed.redirect)
        if target is not None and target.is_file():
            return target
    return page


def check_rendered(report: SiteReport, executable: str, timeout: float = 60) -> None:
    """Render the index and every chapter in Chromium; add what is missing to ``report``."""
    for page in report.pages:
        if page.path != "index.html" and not CHAPTER_PAGE.match(page.path):
            continue
        path = report.site / page.path
        expected = parse_page(landing_page(report.site, path).read_text(encoding="utf-8", errors="replace"))
        try:
            rendered = parse_page(render_dom(executable, path, timeout))
        except (RuntimeError, subprocess.TimeoutExpired, OSError) as error:
            problems = [f"chromium could not render it ({str(error).splitlines()[0]})"]
        else:
            problems = []
            if expected.headings and expected.headings[0] not in rendered.headings:
                problems.append(f"rendered page lacks its <h1> {expected.headings[0]!r}")
            elif not rendered.headings:
                problems.append("rendered page has no <h1>")
            lost = [src for src in expected.images if src not in rendered.images]
            if lost:
                problems.append(f"rendered page lacks {len(lost)} of its images, e.g. {lost[0]!r}")
            page.rendered = f"rendered: h1 {len(rendered.headings)}, images {len(rendered.images)}"
        page.problems.extend(problems)
        report.problems.extend(f"{page.path}: {problem}" for problem in problems)


def check_site(
    site: str | Path, chromium: str = "auto", screenshot_path: str | Path | None = None, timeout: float = 60
) -> SiteReport:
    """Every check; ``chromium`` is ``"auto"`` (if on PATH), ``"always"`` or ``"never"``."""
    if chromium not in ("auto", "always", "never"):
        raise ValueError(f"chromium must be auto, always or never, not {chromium!r}")
    report = check_static(site)
    executable = find_chromium() if chromium != "never" else None
    if chromium == "always" and executable is None:
        report.problems.append("chromium: not found on PATH (install chromium or use --chromium auto)")
    if executable:
        check_rendered(report, executable, timeout)
        index = report.site / "index.html"
        if screenshot_path is not None and index.is_file():
            try:
                screenshot(executable, landing_page(report.site, index), Path(screenshot_path), timeout)
            except (RuntimeError, subprocess.TimeoutExpired, OSError) as error:
                report.problems.append(f"index.html: screenshot failed ({str(error).splitlines()[0]})")
    elif screenshot_path is not None and chromium != "never":
        report.problems.append("--screenshot needs chromium, which is not on PATH")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ferlib.book.sitecheck", description=__doc__.splitlines()[0].rstrip(".") + "."
    )
    parser.add_argument("site", help="the built site, e.g. _build/html")
    parser.add_argument("--chromium", default="auto", choices=("auto", "always", "never"))
    parser.add_argument("--screenshot", default=None, metavar="PATH", help="save a PNG of the rendered index here")
    parser.add_argument("--timeout", type=float, default=60, help="seconds per Chromium run (default 60)")
    args = parser.parse_args(argv)
    if not Path(args.site).is_dir():
        print(f"sitecheck: error: {args.site} is not a folder (build the book first)", file=sys.stderr)
        return 2
    report = check_site(args.site, args.chromium, args.screenshot, args.timeout)
    for page in report.pages:
        status = "ok  " if not page.problems else "FAIL"
        rendered = f", {page.rendered}" if page.rendered else ""
        print(f"{status} {page.path}: {page.links} internal links, {page.images} images{rendered}")
    engine = "never" if args.chromium == "never" else (find_chromium() or "not found, skipped")
    print(f"checked {len(report.pages)} pages under {args.site} (chromium: {engine})")
    if report.problems:
        print(f"{len(report.problems)} problem(s):")
        for problem in report.problems:
            print(f"  {problem}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
