"""A tiny WordNet database written in WordNet's own file format (wndb), for synonym replacement."""

from __future__ import annotations

from pathlib import Path

import pytest

HEADER = "  1 This is a tiny test database in WordNet's format.\n"
# pos -> synsets, each a list of lemmas (multi-word lemmas with underscores; adjectives may carry a marker).
SYNSETS = {
    "noun": [["film", "movie", "picture_show"], ["goose"], ["actor", "player"], ["story", "plot"]],
    "verb": [["love", "adore"], ["act", "play"]],
    "adj": [["dull(a)", "boring"], ["wonderful", "marvelous"]],
    "adv": [["quickly", "rapidly"]],
}
EXCEPTIONS = {"noun": {"geese": "goose"}, "verb": {}, "adj": {}, "adv": {}}


def write_wordnet(folder: Path, synsets: dict[str, list[list[str]]] = SYNSETS) -> Path:
    """index.<pos>, data.<pos> (each synset at the byte offset its index lines point to) and <pos>.exc."""
    folder.mkdir(parents=True, exist_ok=True)
    ss_type = {"noun": "n", "verb": "v", "adj": "a", "adv": "r"}
    for pos, sets in synsets.items():
        data, offsets, index = HEADER, [], {}
        for lemmas in sets:
            offset = len(data.encode())
            offsets.append(offset)
            words = " ".join(f"{w} 0" for w in lemmas)
            data += f"{offset:08d} 03 {ss_type[pos]} {len(lemmas):02x} {words} 000 | a test gloss  \n"
            for w in lemmas:
                index.setdefault(w.split("(")[0].lower(), []).append(offset)
        (folder / f"data.{pos}").write_text(data)
        lines = [f"{lemma} {ss_type[pos]} {len(offs)} 0 {len(offs)} 0 " + " ".join(f"{o:08d}" for o in offs) + "  \n"
                 for lemma, offs in sorted(index.items())]  # fmt: skip
        (folder / f"index.{pos}").write_text(HEADER + "".join(lines))
        (folder / f"{pos}.exc").write_text("".join(f"{k} {v}\n" for k, v in EXCEPTIONS[pos].items()))
    return folder


@pytest.fixture
def tiny_wordnet(tmp_path) -> Path:
    return write_wordnet(tmp_path / "wordnet")
