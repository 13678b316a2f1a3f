#!/usr/bin/env python3
"""Checks the built book's internal links and anchors, and the README's
links into the book, offline. Usage: check-links.py <built book> <docs dir> <README>

Every relative href or src in the book's pages must name a file the build
wrote, and its #fragment an id in that file. The README's relative links
must name a file in the repository; a link into docs/ with a fragment is
checked against the page the book built from it. Exits 1 listing each
broken link."""
import html.parser
import os
import re
import sys
import urllib.parse


class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids, self.links = set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "a" and "name" in attrs:
            self.ids.add(attrs["name"])
        for key in ("href", "src"):
            if attrs.get(key) and tag in ("a", "img", "link", "script"):
                self.links.append(attrs[key])


def parse(path):
    page = Page()
    with open(path, encoding="utf-8") as f:
        page.feed(f.read())
    return page


def external(link):
    return re.match(r"^[a-z][a-z0-9+.-]*:", link) or link.startswith("//")


def main(book, docs, readme):
    pages, broken = {}, []

    def ids_of(path):
        if path not in pages:
            pages[path] = parse(path)
        return pages[path].ids

    checked = 0
    for root, _, files in os.walk(book):
        for name in files:
            # print.html repeats every page with its links rewritten.
            if not name.endswith(".html") or name == "print.html":
                continue
            source = os.path.join(root, name)
            for link in parse(source).links:
                if external(link):
                    continue
                checked += 1
                target, _, fragment = urllib.parse.unquote(link).partition("#")
                path = os.path.normpath(os.path.join(root, target)) if target else source
                if os.path.isdir(path):
                    path = os.path.join(path, "index.html")
                if not os.path.exists(path):
                    broken.append(f"{os.path.relpath(source, book)}: {link} (no such file)")
                elif fragment and path.endswith(".html") and fragment not in ids_of(path):
                    broken.append(f"{os.path.relpath(source, book)}: {link} (no such anchor)")

    base = os.path.dirname(os.path.abspath(readme))
    with open(readme, encoding="utf-8") as f:
        text = re.sub(r"```.*?```", "", f.read(), flags=re.S)
    for link in re.findall(r"\]\(([^)\s]+)\)", text):
        if external(link):
            continue
        checked += 1
        target, _, fragment = link.partition("#")
        path = os.path.normpath(os.path.join(base, target))
        if not os.path.exists(path):
            broken.append(f"{readme}: {link} (no such file)")
            continue
        rel = os.path.relpath(path, os.path.abspath(docs))
        if fragment and rel.endswith(".md") and not rel.startswith(".."):
            built = os.path.join(book, rel[: -len(".md")] + ".html")
            if rel.endswith("README.md"):
                built = os.path.join(book, os.path.dirname(rel), "index.html")
            if not os.path.exists(built) or fragment not in ids_of(built):
                broken.append(f"{readme}: {link} (no such anchor in the built book)")

    for line in broken:
        print(f"broken link: {line}")
    print(f"{checked} internal links checked, {len(broken)} broken")
    return 1 if broken else 0


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    sys.exit(main(*sys.argv[1:]))
