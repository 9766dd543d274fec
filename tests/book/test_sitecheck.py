"""``python -m ferlib.book.sitecheck``: links, anchors and figures of a built site; Chromium rendering."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from ferlib.book.sitecheck import check_site, check_static, find_chromium, main

REPO_SITE = Path(__file__).resolve().parents[2] / "_build" / "html"

CHAPTER = """<html><head><link rel="stylesheet" href="../_static/style.css"></head><body>
<h1 id="first">First chapter<a class="headerlink" href="#first">#</a></h1>
<p><a href="intro.html#who">who</a> <a href="https://example.org/x.html">out</a> <a href="mailto:a@b.c">mail</a>
<a href="#">top</a></p>
<img src="{image}" alt="a figure">
</body></html>"""


def make_site(root: Path, image: str = "../_images/figure.png", link: str = "01_first.html#results") -> Path:
    """A tiny Jupyter Book-like site: a redirecting index, an intro and one chapter with a figure."""
    site = root / "html"
    for folder in ("book", "_images", "_static"):
        (site / folder).mkdir(parents=True, exist_ok=True)
    (site / "index.html").write_text('<meta http-equiv="Refresh" content="0; url=book/intro.html" />')
    (site / "book" / "intro.html").write_text(
        '<html><body><h1>Intro</h1><section id="who"><a href="' + link + '">results</a></section>'
        '<a href="../genindex.html">index</a></body></html>'
    )
    (site / "genindex.html").write_text("<html><body><h1>Index</h1></body></html>")
    (site / "book" / "01_first.html").write_text(CHAPTER.format(image=image).replace("<p>", '<p id="results">', 1))
    Image.new("RGB", (8, 8), "red").save(site / "_images" / "figure.png")
    (site / "_static" / "style.css").write_text("body { color: black; }")
    # Theme templates in _static end in .html but are not pages.
    (site / "_static" / "webpack-macros.html").write_text("<link href=\"{{ pathto('x.css', 1) }}\">")
    return site


def test_a_good_site_passes(tmp_path, capsys):
    site = make_site(tmp_path)
    report = check_static(site)
    assert report.ok, report.problems
    assert {page.path for page in report.pages} == {
        "index.html",
        "genindex.html",
        "book/intro.html",
        "book/01_first.html",
    }
    chapter = next(page for page in report.pages if page.path == "book/01_first.html")
    assert chapter.images == 1 and chapter.links == 3  # css, intro.html#who, the image; not http/mailto/#
    assert main([str(site), "--chromium", "never"]) == 0
    printed = capsys.readouterr().out
    assert "ok   book/01_first.html: 3 internal links, 1 images" in printed


def test_a_broken_link_is_reported(tmp_path):
    site = make_site(tmp_path, link="02_missing.html")
    assert check_static(site).problems == ["book/intro.html: broken a '02_missing.html': no book/02_missing.html"]


def test_a_missing_anchor_is_reported(tmp_path):
    site = make_site(tmp_path, link="01_first.html#nowhere")
    assert check_static(site).problems == [
        "book/intro.html: link '01_first.html#nowhere': no id 'nowhere' in book/01_first.html"
    ]


def test_an_unrendered_role_in_prose_is_reported_but_not_in_code(tmp_path):
    site = make_site(tmp_path)
    chapter = site / "book" / "01_first.html"
    html = chapter.read_text().replace(
        "</body>",
        "<p>the best is <code>{glue:text}</code>best at {glue:text}best_accuracy; <code>a {cite} b</code></p>"
        "<pre>glue('x', 1)  # {glue:text}`x` in a code listing is fine</pre></body>",
    )
    chapter.write_text(html)
    assert check_static(site).problems == [
        "book/01_first.html: unrendered MyST role in the prose: '{glue:text}'",
        "book/01_first.html: unrendered MyST role in the prose: 'best at {glue:text}best_accuracy;'",
    ]


def test_a_missing_image_is_reported(tmp_path, capsys):
    site = make_site(tmp_path, image="../_images/gone.png")
    problems = check_static(site).problems
    assert "book/01_first.html: broken img '../_images/gone.png': no _images/gone.png" in problems
    assert "book/01_first.html: a chapter page without any image (figures missing?)" in problems
    assert main([str(site), "--chromium", "never"]) == 1
    printed = capsys.readouterr().out
    assert "FAIL book/01_first.html" in printed and "2 problem(s):" in printed


def test_a_missing_index_and_links_out_of_the_site_are_reported(tmp_path):
    site = make_site(tmp_path, link="../../secret.html")
    (site / "index.html").unlink()
    problems = check_static(site).problems
    assert "index.html: missing" in problems
    assert "book/intro.html: link '../../secret.html' points outside the site" in problems


def test_not_a_folder_is_a_usage_error(tmp_path, capsys):
    assert main([str(tmp_path / "nothing")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_chromium_always_without_chromium_is_a_problem(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no browser on this PATH
    report = check_site(make_site(tmp_path), chromium="always")
    assert any("chromium: not found" in problem for problem in report.problems)


@pytest.mark.skipif(not (REPO_SITE / "index.html").exists(), reason="the book is not built (_build/html)")
def test_the_built_book_passes():
    report = check_static(REPO_SITE)
    assert report.ok, "\n".join(report.problems)


@pytest.mark.slow
@pytest.mark.skipif(find_chromium() is None, reason="chromium is not installed")
def test_chromium_renders_heading_and_images(tmp_path):
    site = make_site(tmp_path)
    shot = tmp_path / "index.png"
    report = check_site(site, chromium="always", screenshot_path=shot)
    assert report.ok, report.problems
    assert shot.stat().st_size > 1000
    assert next(page for page in report.pages if page.path == "book/01_first.html").rendered

    # A script that removes the heading: the HTML is fine, the page the reader sees is not.
    chapter = site / "book" / "01_first.html"
    script = "<script>document.querySelector('h1').remove()</script></body>"
    chapter.write_text(chapter.read_text().replace("</body>", script))
    problems = check_site(site, chromium="always").problems
    assert problems == ["book/01_first.html: rendered page lacks its <h1> 'First chapter'"]
