"""Maps and plots on the tiny model: fonts cover every label or escape it, the map cache is reused,
the stratified sample keeps every required token, the CLI re-renders without recomputing."""

from __future__ import annotations

import re
import subprocess
import sys
import warnings

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

import anomtok
from anomtok import maps
from anomtok.cli import cli
from anomtok.commands import MODULES as COMMAND_MODULES
from anomtok.japanese import ja_class
from anomtok.maps import (
    MapOptions,
    MapSettings,
    cache_matches,
    compute_map,
    figstyle,
    figures,
    fonts,
    load_map,
    plot_model,
    read_ids,
    render_all,
    select_rows,
    source_fingerprint,
)
from anomtok.maps import umap as maps_umap

GLYPH_MISSING = r".*[Gg]lyph .* missing from (current )?font"

# Labels planted on the top tokens: Japanese (kana, kanji), Cyrillic, Latin, Korean, Kannada, Thai,
# Arabic, a mathtext trap, Tibetan, Cuneiform, Vai, Han Extension B (Debian's fonts), and two Kawi
# letters (Unicode 15) that no font of the chain covers (escaped).
UNCOVERED = "\U00011f04"  # KAWI LETTER A
PLANTED = ["東京タワー", "ひらがな", "Хронологија", "entferne", "한국어", "ಕನ್ನಡ", "ไทย", "العربية", "$x^2$ cost", "ཀཁ"]
PLANTED += ["\U00012239\U000121a7", "\ua5e1\ua54c", "\U000291a9", "\U00011f04\U00011f05"]


@pytest.fixture(scope="module")
def ranked(tiny_model):
    emb = anomtok.load(tiny_model.hf_dir)
    return emb, anomtok.rank(emb)


@pytest.fixture(scope="module")
def mapped(ranked, tmp_path_factory):
    emb, ranking = ranked
    cache = tmp_path_factory.mktemp("map") / "umap.parquet"
    res = compute_map(
        emb.input.numpy(), ranking.frame, MapOptions(n_epochs=30), cache=cache, source=emb.provenance.to_dict()
    )
    return res, cache


def _planted_frame(frame: pl.DataFrame) -> tuple[pl.DataFrame, dict[int, str]]:
    top = (
        frame.filter(~pl.col("kind").is_in(["unused", "padding"]))
        .sort("score", descending=True)["token_id"]
        .head(len(PLANTED))
        .to_list()
    )
    planted = dict(zip(top, PLANTED))
    tokens = [planted.get(i, t) for i, t in zip(frame["token_id"].to_list(), frame["token"].to_list())]
    return frame.with_columns(token=pl.Series(tokens, dtype=pl.String)), planted


# ------------------------------------------------------------------------------------ fonts


def test_chain_has_the_bundled_fonts_and_covers_the_common_scripts():
    fams = fonts.families()
    assert fams[0] == fonts.BASE_FAMILY
    for fam in (
        "IPAexGothic",
        "NanumGothic",
        "Noto Sans Kannada",
        "Noto Sans Tamil",
        "Noto Sans Bengali",
        "Noto Sans Devanagari",
        "Noto Sans Thai",
        "Noto Sans Arabic",
        "Noto Sans Cuneiform",  # the Debian fonts (make setup installs them)
        "Noto Sans Vai",
        "Noto Sans Egyptian Hieroglyphs",
        "Noto Serif Tibetan",
        "HanaMinB",
    ):
        assert fam in fams, f"{fam} missing: is its font package installed?"
    covered = fonts.scripts_covered(
        [
            "Latin",
            "Cyrillic",
            "Greek",
            "Hiragana",
            "Katakana",
            "Han",
            "Hangul",
            "Kannada",
            "Tamil",
            "Bengali",
            "Devanagari",
            "Thai",
            "Arabic",
            "Hebrew",
            "Cuneiform",
            "Vai",
            "Egyptian_Hieroglyphs",
            "Tibetan",
            "Syriac",
            "Thaana",
            "Cherokee",
        ]
    )
    assert all(covered.values()), covered
    assert fonts.families_for("\U000291a9\U0002a6d6\U0002a700") == [fonts.BASE_FAMILY, "HanaMinB"]  # Ext. B, C
    for text in [
        "東京タワー",
        "ひらがな",
        "Хронологија",
        "entferne",
        "한국어",
        "ಕನ್ನಡ",
        "தமிழ்",
        "বাংলা",
        "हिन्दी",
        "ไทย",
        "العربية",
    ]:
        assert fonts.missing_chars(text) == [], text
        assert fonts.label_text(text) == text


def test_uncovered_script_becomes_a_readable_escape():
    ch = UNCOVERED
    if fonts.is_covered(ch):
        pytest.skip("a Kawi font is in the chain now")
    assert fonts.missing_chars(f"a{ch}b{ch}") == [ch]
    assert fonts.label_text(f"{ch}x") == "\\U00011f04x"
    assert fonts.label_text("\U0001e900") in ("\U0001e900", "\\U0001e900")  # Adlam: escaped unless covered
    assert fonts.escape_char("\x07") == "\\x07"


def test_label_text_spaces_and_length():
    assert fonts.label_text(" the") == "\u2423the"
    assert fonts.label_text("a\nb") == "a\\nb"
    long = fonts.label_text("x" * 100, max_chars=10)
    assert len(long) == 10 and long.endswith("\u2026")


def test_per_label_families_are_the_ones_needed():
    assert fonts.families_for("hello") == [fonts.BASE_FAMILY]
    assert fonts.families_for("hello 東京") == [fonts.BASE_FAMILY, "IPAexGothic"]
    assert "Noto Sans Kannada" in fonts.families_for("ಕನ್ನಡ")


def test_importing_does_not_touch_matplotlib_settings():
    import matplotlib

    before = dict(matplotlib.rcParams)
    fonts.families()
    assert "matplotlib_fontja" not in sys.modules and "koreanize_matplotlib" not in sys.modules
    assert dict(matplotlib.rcParams) == before


# ------------------------------------------------------------------------------------ plots


def test_plots_render_planted_labels_in_many_scripts_without_missing_glyphs(ranked, mapped, tmp_path):
    import matplotlib

    _, ranking = ranked
    res, _ = mapped
    frame, planted = _planted_frame(ranking.frame)
    rc_before = dict(matplotlib.rcParams)
    marks = list(planted)[:3]
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=GLYPH_MISSING)
        files = render_all(
            frame,
            tmp_path,
            res,
            title="tiny ＝ テスト",
            label_top=len(PLANTED) + 5,
            mark_ids=marks,
            mark_name="negative-temperature tokens",
        )
        fig = figures.map_figure(frame, res, "score", label_top=len(PLANTED) + 5, mark_ids=marks, spot_radius=0)
        fig.savefig(tmp_path / "check.png", format="png")
    assert dict(matplotlib.rcParams) == rc_before
    assert set(files) == {"map_score", "map_kind", "map_script", "map_japanese", "centroid_hist", "score_norm"}
    for paths in files.values():
        assert [p.suffix for p in paths] == [".png", ".svg"]
        png, svg = paths
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
        assert svg.read_text(encoding="utf-8").lstrip().startswith("<?xml")
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave nothing behind
    ax = fig.axes[0]
    labels = {re.sub(" \u00d7\\d+$", "", t.get_text()) for t in ax.texts}  # "token ×3": three tokens at one spot
    for want in [
        "東京タワー",
        "ひらがな",
        "Хронологија",
        "entferne",
        "한국어",
        "ಕನ್ನಡ",
        "$x^2$\u2423cost",
        "ཀཁ",
        "\U00012239\U000121a7",
        "\ua5e1\ua54c",
        "\U000291a9",
        "\\U00011f04\\U00011f05",
    ]:
        assert want in labels, f"{want!r} not labelled; labels: {sorted(labels)}"
    # the plot says how many points it shows and how they were chosen
    notes = " ".join(t.get_text() for t in fig.texts)
    assert f"{res.coords.height:,} points: the full vocabulary" in notes
    assert "seed=0" in notes and "UMAP" in notes


def test_the_glyph_check_does_catch_a_missing_glyph(tmp_path):
    # the control: drawing an uncovered character raw (not through label_text) does warn
    ch = UNCOVERED
    if fonts.is_covered(ch):
        pytest.skip("a Kawi font is in the chain now")
    fig = figstyle.new_figure(2, 1)
    fig.text(0.1, 0.5, ch, fontproperties=fonts.font_properties(size=8))
    with pytest.warns(UserWarning, match=GLYPH_MISSING):
        fig.savefig(tmp_path / "x.png", format="png")


def test_japanese_map_labels_japanese_tokens(ranked, mapped):
    _, ranking = ranked
    res, _ = mapped
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=GLYPH_MISSING)
        fig = figures.map_figure(ranking.frame, res, "japanese", label_top=10)
        fig.canvas.draw()
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert labels and all(ja_class(t.replace("\u2423", " ")) for t in labels)
    legend = " ".join(t.get_text() for t in fig.legends[0].get_texts())
    assert re.search(r"katakana \(\d+\)", legend) and re.search(r"kanji \(\d+\)", legend)


def test_labels_do_not_overlap(ranked, mapped):
    _, ranking = ranked
    res, _ = mapped
    fig = figures.map_figure(ranking.frame, res, "score", label_top=40)
    from matplotlib.text import Text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [Text.get_window_extent(t, renderer) for t in fig.axes[0].texts]  # the text, not its leader line
    assert len(boxes) >= 10
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not a.overlaps(b)


# ------------------------------------------------------------------------------------ map cache


def test_second_render_reuses_the_cache_without_umap(ranked, mapped, monkeypatch):
    emb, ranking = ranked
    res, cache = mapped
    assert not res.from_cache and cache.exists()

    def boom(*a, **k):
        raise AssertionError("UMAP was called although the cache is valid")

    monkeypatch.setattr(maps_umap, "umap_coords", boom)
    again = compute_map(
        emb.input.numpy(), ranking.frame, MapOptions(n_epochs=30), cache=cache, source=emb.provenance.to_dict()
    )
    assert again.from_cache
    assert again.coords.equals(res.coords)
    # without the matrix, the source files vouch for the cache
    settings = MapSettings.make(MapOptions(n_epochs=30), int(ranking.frame["valid"].sum()), *emb.shape)
    fp = source_fingerprint(emb.provenance.to_dict())
    hit = load_map(cache, settings, ranking.frame, source=fp)
    assert hit is not None and hit.coords.equals(res.coords)
    # other settings or another matrix: not reused
    other = MapSettings.make(MapOptions(n_epochs=30, seed=1), int(ranking.frame["valid"].sum()), *emb.shape)
    assert load_map(cache, other, ranking.frame, source=fp) is None
    assert cache_matches(hit.meta, settings, digest="0" * 32) == "made from another matrix"


def test_coordinates_belong_to_their_token_whatever_the_row_order(ranked, tmp_path, monkeypatch):
    emb, ranking = ranked
    M = emb.input.numpy()
    # a stand-in projection (the first two dimensions) shows which matrix row each point came from
    monkeypatch.setattr(maps_umap, "umap_coords", lambda X, **kw: np.ascontiguousarray(X[:, :2]))
    for frame in (ranking.frame, ranking.frame.sort("token_id"), ranking.frame.drop("valid")):
        res = compute_map(M, frame, MapOptions(), cache=None)
        ids = res.coords["token_id"].to_numpy()
        assert np.array_equal(res.coords["x"].to_numpy(), M[ids, 0])
        assert np.array_equal(res.coords["y"].to_numpy(), M[ids, 1])
    with pytest.raises(anomtok.InputError):
        compute_map(M, ranking.frame.head(10), MapOptions())


def test_umap_is_seeded(ranked):
    emb, _ = ranked
    X = emb.input.numpy()[:200]
    a = maps_umap.umap_coords(X, seed=3, n_epochs=20)
    b = maps_umap.umap_coords(X, seed=3, n_epochs=20)
    assert a.shape == (200, 2) and np.array_equal(a, b)


def test_stratified_sample_keeps_every_required_token(ranked):
    _, ranking = ranked
    frame = ranking.frame
    extra = [5, 6, 7]
    req = maps.required_reasons(frame, 40, extra)
    kinds = dict(zip(frame["token_id"].to_list(), frame["kind"].to_list()))
    valid = dict(zip(frame["token_id"].to_list(), frame["valid"].to_list()))
    # what must be there: the top 40 by score, every unused/reference and Japanese token, the marks
    top = (
        frame.filter(pl.col("valid") & (pl.col("kind") != "padding"))
        .sort("score", descending=True)["token_id"]
        .head(40)
        .to_list()
    )
    ja = [i for i, t in zip(frame["token_id"].to_list(), frame["token"].to_list()) if ja_class(t) and valid[i]]
    unused = [i for i, k in kinds.items() if k == "unused"]
    assert ja and unused
    must = set(top) | set(ja) | set(unused) | set(extra)
    assert must <= set(req)
    sel = select_rows(frame, 300, flag_top=40, seed=0, extra_ids=extra)
    ids = set(sel.ids.tolist())
    assert must <= ids and len(ids) == 300 and sel.mode == "sample"
    assert sorted(sel.ids.tolist()) == sel.ids.tolist() and len(sel.why) == 300
    assert sel.counts()["sampled"] == 300 - len(req)
    # the sample spreads over strata: several kinds and scripts among the sampled rows
    sampled = [i for i, w in zip(sel.ids.tolist(), sel.why) if w == "sampled"]
    assert len({kinds[i] for i in sampled}) >= 2
    # deterministic per seed
    assert np.array_equal(select_rows(frame, 300, flag_top=40, seed=0, extra_ids=extra).ids, sel.ids)
    assert not np.array_equal(select_rows(frame, 300, flag_top=40, seed=1, extra_ids=extra).ids, sel.ids)
    # a budget smaller than the required set still keeps all of it
    small = select_rows(frame, 20, flag_top=40, seed=0, extra_ids=extra)
    assert must <= set(small.ids.tolist()) and small.counts().get("sampled", 0) == 0
    assert "stratified" in small.description and str(len(req)) in small.description.replace(",", "")


def test_map_options_choose_full_or_sample():
    assert MapOptions().mode(262_144) == ("full", 262_144)
    assert MapOptions(max_full_rows=100_000).mode(262_144) == ("sample", 50_000)
    assert MapOptions(sample=1000).mode(500) == ("full", 500)
    assert MapOptions(full=True, max_full_rows=10).mode(500) == ("full", 500)
    assert MapOptions(max_full_rows=10).mode(500) == ("full", 500)  # the default sample holds every row
    assert MapOptions(max_full_rows=10, default_sample=100).mode(500) == ("sample", 100)
    with pytest.raises(anomtok.InputError):
        MapOptions(full=True, sample=100)


def test_sampled_map_cache_needs_every_required_token(ranked, tmp_path, monkeypatch):
    emb, ranking = ranked
    cache = tmp_path / "umap.parquet"
    calls = []
    real = maps_umap.umap_coords

    def counting(M, **kw):
        calls.append(M.shape[0])
        return real(M, **kw)

    monkeypatch.setattr(maps_umap, "umap_coords", counting)
    opt = MapOptions(sample=300, flag_top=40, n_epochs=10)
    first = compute_map(emb.input.numpy(), ranking.frame, opt, cache=cache)
    assert calls == [300] and set(first.coords["why"].unique()) >= {"flagged", "reference", "japanese", "sampled"}
    compute_map(emb.input.numpy(), ranking.frame, opt, cache=cache)
    assert calls == [300]  # reused
    missing = next(
        i
        for i in ranking.frame["token_id"].to_list()
        if i not in set(first.coords["token_id"].to_list())
        and ranking.frame.filter(pl.col("token_id") == i)["valid"].item()
    )
    compute_map(emb.input.numpy(), ranking.frame, opt, cache=cache, extra_ids=[missing])
    assert len(calls) == 2  # a newly marked token was not on the map: recomputed


# ------------------------------------------------------------------------------------ CLI


def test_cli_plot_then_rerender_from_cache(tiny_model, tmp_path, monkeypatch):
    out = tmp_path / "out"
    (tmp_path / "ids.txt").write_text("# negative-temperature tokens\n5, 6\n7\n")
    runner = CliRunner()
    args = [
        "plot",
        str(tiny_model.hf_dir),
        "-o",
        str(out),
        "--n-epochs",
        "20",
        "--format",
        "png",
        "--label-top",
        "10",
        "--mark-ids",
        str(tmp_path / "ids.txt"),
    ]
    r1 = runner.invoke(cli, args)
    assert r1.exit_code == 0, r1.output
    # every row of the tiny model is valid (its padding rows included): the map holds them all
    assert f"{tiny_model.embedding_rows:,} points: the full vocabulary" in r1.output
    assert pl.read_parquet(out / "umap.parquet")["token_id"].sort().to_list() == list(range(tiny_model.embedding_rows))
    for name in (
        "ranked.parquet",
        "meta.json",
        "umap.parquet",
        "plots/map_score.png",
        "plots/map_japanese.png",
        "plots/centroid_hist.png",
        "plots/score_norm.png",
    ):
        assert (out / name).exists(), name
    assert not (out / "plots/map_score.svg").exists()
    coords1 = pl.read_parquet(out / "umap.parquet")

    def boom(*a, **k):
        raise AssertionError("UMAP recomputed")

    def no_load(*a, **k):
        raise AssertionError("model reloaded")

    monkeypatch.setattr(maps_umap, "umap_coords", boom)
    monkeypatch.setattr("anomtok.loading.load", no_load)
    r2 = runner.invoke(cli, args)
    assert r2.exit_code == 0, r2.output
    assert "reused from the cache" in r2.output and "ranking (reused)" in r2.output
    assert pl.read_parquet(out / "umap.parquet").equals(coords1)


def test_cli_plot_errors(tiny_model, tmp_path):
    runner = CliRunner()
    base = ["plot", str(tiny_model.hf_dir), "-o", str(tmp_path / "o")]
    r = runner.invoke(cli, base + ["--full", "--sample", "100"])
    assert r.exit_code == 2 and "--full" in r.output
    r = runner.invoke(cli, base + ["--format", "jpg", "--no-map"])
    assert r.exit_code == 2 and "format" in r.output
    r = runner.invoke(cli, base + ["--mark-ids", str(tmp_path / "nope.txt")])
    assert r.exit_code == 2 and "no such file" in r.output


def test_read_ids_formats(tmp_path):
    (tmp_path / "a.csv").write_text("token_id,token\n3,a\n9,b\n")
    (tmp_path / "b.json").write_text('{"token_ids": [1, 2]}')
    (tmp_path / "c.txt").write_text("4 5,6 # comment\n")
    assert read_ids(tmp_path / "a.csv") == [3, 9]
    assert read_ids(tmp_path / "b.json") == [1, 2]
    assert read_ids(tmp_path / "c.txt") == [4, 5, 6]
    (tmp_path / "d.txt").write_text("x y")
    with pytest.raises(anomtok.InputError):
        read_ids(tmp_path / "d.txt")


def test_plot_model_without_map(ranked, tmp_path):
    emb, _ = ranked
    res = plot_model(emb, tmp_path, no_map=True, formats=("png",))
    assert set(res.files) == {"centroid_hist", "score_norm"} and res.map_meta is None
    assert (tmp_path / "ranked.parquet").exists() and not (tmp_path / "umap.parquet").exists()


def test_plot_model_with_the_callers_ranking(ranked, tmp_path, monkeypatch):
    """What ``anomtok scan`` does: its own ranking and title, the map options of its rule; nothing is
    ranked or loaded again, no ranking file is written, marks outside the vocabulary are left out."""
    emb, ranking = ranked

    def no_rank(*a, **k):
        raise AssertionError("ranked again")

    monkeypatch.setattr("anomtok.ranking.rank", no_rank)
    monkeypatch.setattr("anomtok.loading.load", no_rank)
    res = plot_model(
        emb,
        tmp_path,
        ranking=ranking,
        no_map=True,
        formats=("png",),
        title="the scan's title",
        mark_ids=[5, 6, 10**9],
        mark_name="negative-temperature tokens",
    )
    assert res.ranking_reused and res.marked == 2 and set(res.files) == {"centroid_hist", "score_norm"}
    assert not (tmp_path / "ranked.parquet").exists()
    assert (tmp_path / "plots" / "centroid_hist.png").is_file()


def test_scan_and_plot_share_one_sampling_rule():
    """``anomtok scan`` and ``anomtok plot`` map the full vocabulary up to 300,000 valid rows (Gemma 3's
    262,144 included) and a 50,000-token sample above; ``--umap-sample N`` samples, ``--full-umap``
    maps every row whatever the size. One rule, the same default."""
    from anomtok.scan import ScanOptions

    scan_opts = ScanOptions(device="cpu").map_options
    assert scan_opts == MapOptions() and scan_opts.max_full_rows == 300_000
    assert scan_opts.mode(49_152) == ("full", 49_152) and scan_opts.mode(262_144) == ("full", 262_144)
    assert scan_opts.mode(300_001) == ("sample", 50_000)
    assert ScanOptions(device="cpu", umap_full=True).map_options.mode(1_000_000) == ("full", 1_000_000)
    assert ScanOptions(device="cpu", umap_sample=2000).map_options.mode(262_144) == ("sample", 2000)
    assert ScanOptions(device="cpu", umap_full_max_rows=100_000).map_options.mode(262_144) == ("sample", 50_000)


def test_maps_names_resolve_lazily():
    """Every name of ``anomtok.maps.__all__`` resolves; importing the package, or the plot command,
    pulls in neither polars nor matplotlib."""
    assert set(maps.__all__) <= set(dir(maps))
    for name in maps.__all__:
        assert getattr(maps, name) is not None, name
    with pytest.raises(AttributeError):
        maps.no_such_name  # noqa: B018
    code = (
        "import sys, anomtok.maps, anomtok.commands.plot; "
        "print(','.join(m for m in ('polars', 'matplotlib', 'umap', 'torch') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "", proc.stderr


@pytest.mark.parametrize("module", COMMAND_MODULES)
def test_a_command_module_imports_first(module):
    """A command module imported before ``anomtok.cli`` (as a test or a library user may) is not
    caught in a cycle: the shared CLI pieces live in ``anomtok.commands.common``."""
    code = f"import anomtok.commands.{module} as m, anomtok.cli as c; assert m.command in c.cli.commands.values()"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
