"""COPY/ADD destinations resolved as the builders resolve them, on images built here."""

from __future__ import annotations

from hostile import Layer, M, Oci, tar_bytes

from forensics.pipeline import analyze

H = "a" * 64
BASE = [M("etc/", type="dir"), M("etc/old.conf", b"old\n"), M("etc/keep.conf", b"keep\n")]


def scan(tmp_path, layers, history, workdir=None):
    def mutate(cfg):
        cfg["history"] = history
        if workdir:
            cfg["config"]["WorkingDir"] = workdir

    oci = Oci(layers=[Layer.of(tar_bytes(m)) for m in layers], mutate_config=mutate)
    p = tmp_path / "img.tar"
    p.write_bytes(oci.tar())
    return analyze(str(p))


def unexplained(r):
    return {p for f in r.findings if f.code == "history.unexplained-change" for p in f.evidence["paths"]}


def explained(r, step):
    return {c.path: c.explained_by for c in r.images[0].history[step].analysis.explained}


BASE_STEP = {"created_by": "/bin/sh -c #(nop) ADD file:" + H + " in / "}


def test_a_copied_file_named_wh_deletes_what_its_line_says(tmp_path):
    # classic: `COPY .wh.old.conf /etc/.wh.old.conf` is recorded with the whiteout's own name
    r = scan(
        tmp_path,
        [BASE, [M("etc/", type="dir"), M("etc/.wh.old.conf", b"")]],
        [BASE_STEP, {"created_by": f"/bin/sh -c #(nop) COPY file:{H} in /etc/.wh.old.conf "}],
    )
    assert not unexplained(r)
    assert explained(r, 1)["/etc/old.conf"] == "COPY of a file named .wh.old.conf, which deletes /etc/old.conf"


def test_a_wh_file_deletes_only_its_own_name(tmp_path):
    # The same line cannot account for deleting a sibling it does not name.
    r = scan(
        tmp_path,
        [BASE, [M("etc/", type="dir"), M("etc/.wh.old.conf", b""), M("etc/.wh.keep.conf", b"")]],
        [BASE_STEP, {"created_by": f"/bin/sh -c #(nop) COPY file:{H} in /etc/.wh.old.conf "}],
    )
    assert unexplained(r) == {"/etc/keep.conf"}


def test_buildkit_copy_of_a_wh_file_into_a_directory(tmp_path):
    r = scan(
        tmp_path,
        [BASE, [M("etc/", type="dir"), M("etc/.wh.old.conf", b"")]],
        [BASE_STEP, {"created_by": "COPY .wh.old.conf /etc/ # buildkit", "comment": "buildkit.dockerfile.v0"}],
    )
    assert not unexplained(r)


def test_relative_destinations_follow_workdir_in_every_builder_form(tmp_path):
    layer = [M("app/", type="dir"), M("app/conf/", type="dir"), M("app/conf/hello.txt", b"hi\n", mode=0o640)]
    for line, comment in (
        ("COPY --chown=1:2 --chmod=0640 hello.txt conf/ # buildkit", "buildkit.dockerfile.v0"),
        (f"/bin/sh -c #(nop) COPY --chown=1:2 file:{H} in conf/ ", None),  # classic records --chown
        (f"/bin/sh -c #(nop) COPY file:{H} in conf/ ", None),
    ):  # buildah drops the flags
        workdir = (
            {"created_by": "WORKDIR /app", "comment": "buildkit.dockerfile.v0", "empty_layer": True}
            if comment
            else {"created_by": "/bin/sh -c #(nop) WORKDIR /app", "empty_layer": True}
        )
        step = {"created_by": line, **({"comment": comment} if comment else {})}
        r = scan(tmp_path, [BASE, layer], [BASE_STEP, workdir, step])
        assert not unexplained(r), line
        assert explained(r, 2)["/app/conf/hello.txt"] == "COPY destination /app/conf", line


def test_workingdir_inherited_from_a_base_config_without_a_workdir_line(tmp_path):
    layer = [M("w/", type="dir"), M("w/a/", type="dir"), M("w/a/one.txt", b"1\n")]
    hist = [BASE_STEP, {"created_by": f"/bin/sh -c #(nop) COPY dir:{H} in a "}]
    r = scan(tmp_path, [BASE, layer], hist, workdir="/w")
    assert not unexplained(r)
    assert explained(r, 1)["/w/a/one.txt"] == "COPY destination /w/a"
    # Without the config's WorkingDir the same layer is where the line does not say.
    assert unexplained(scan(tmp_path, [BASE, layer], hist)) == {"/w", "/w/a", "/w/a/one.txt"}
    # A WORKDIR line anywhere means the history records the WORKDIRs: the config's is not used.
    forged = [BASE_STEP, hist[1], {"created_by": "/bin/sh -c #(nop) WORKDIR /w", "empty_layer": True}]
    assert "/w/a/one.txt" in unexplained(scan(tmp_path, [BASE, layer], forged, workdir="/w"))


def test_a_file_destination_is_that_path_not_a_tree(tmp_path):
    # `COPY app.conf /srv/app` wrote the file /srv/app; a directory it replaced
    # (and the files deleted with it) is not what COPY does to an existing directory.
    lower = BASE + [M("srv/", type="dir"), M("srv/app/", type="dir"), M("srv/app/data", b"d\n")]
    upper = [M("srv/", type="dir"), M("srv/.wh.app", b""), M("srv/app", b"conf\n")]
    r = scan(tmp_path, [lower, upper], [BASE_STEP, {"created_by": f"/bin/sh -c #(nop) COPY file:{H} in /srv/app "}])
    assert "/srv/app/data" in unexplained(r)
    assert explained(r, 1).get("/srv/app") == "COPY destination /srv/app"


def test_a_wh_name_without_a_target_explains_no_deletion(tmp_path):
    # `.wh.` and `.wh..` name nothing beside them, and COPY makes the parents of its
    # destination, never removes them: neither line accounts for deleting /opt.
    lower = BASE + [M("opt/", type="dir"), M("opt/tool", b"t\n")]
    for dest in ("/opt/.wh.", "/opt/.wh..", "/opt/sub/x"):
        r = scan(
            tmp_path,
            [lower, [M(".wh.opt", b"")]],
            [BASE_STEP, {"created_by": f"/bin/sh -c #(nop) COPY file:{H} in {dest} "}],
        )
        assert {"/opt", "/opt/tool"} <= unexplained(r), dest
