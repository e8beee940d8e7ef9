"""What each finding code teaches: why it matters, how an attacker produces it, how to confirm
it by hand with standard tools, and what else produces it.

The by-hand commands are written for an OCI archive `IMAGE.tar` (`index.json` ->
manifest -> config and layers under `blobs/sha256/`), with placeholders in angle brackets:
`<manifest-hex>`, `<config-hex>`, `<layer-hex>`, `<blob-hex>` (a digest without `sha256:`),
`<i>` (a layer index, from 0), `<h>` (a history index) and `<path>` (a path inside a layer,
without the leading /). `forensics explain IMAGE.tar` prints the same commands with the real
names, for the layout at hand. tests/test_explain.py runs the testable ones on real samples.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Teaching:
    severity: str  # how the project grades it, in words
    why: str
    attack: str
    confirm: tuple[tuple[str, str], ...]  # (what it shows, the command)
    false_positives: tuple[str, ...]


# Reading the documents, shared by many entries.
_MANIFEST = (
    "Find the manifest, then the config and layer digests it names",
    "tar -xOf IMAGE.tar index.json | jq -r '.manifests[].digest'; "
    "tar -xOf IMAGE.tar blobs/sha256/<manifest-hex> | jq -r '.config.digest, .layers[].digest'",
)
_LAYER_LIST = (
    "List the layer's entries with their types, modes, owners and sizes (gzip -dc for a +gzip "
    "layer, zstd -dc for +zstd, nothing for a plain tar)",
    "tar -xOf IMAGE.tar blobs/sha256/<layer-hex> | gzip -dc | tar -tvf -",
)
_STEP = (
    "Read the history step that owns the layer",
    "tar -xOf IMAGE.tar blobs/sha256/<config-hex> | jq -r '.history[<h>] | .created_by, .empty_layer'",
)
_FILE_HEAD = (
    "Look at the file's first bytes (\\177ELF is a program, #! a script)",
    "tar -xOf IMAGE.tar blobs/sha256/<layer-hex> | gzip -dc | tar -xOf - <path> | head -c 64 | od -c | head -3",
)

TEACHING: dict[str, Teaching] = {
    "archive.malformed": Teaching(
        "high (low for config values of the wrong JSON type)",
        "Whatever could not be parsed could not be verified: a truncated layer hides its last files, an "
        "unparseable manifest hides the layers it lists. Readers also disagree on broken input, so the "
        "image your runtime sees may not be the one a scanner saw.",
        "Cut the tar or a layer short, corrupt a gzip member, or write a JSON document that one parser "
        "accepts and another rejects (a duplicate key, a value of the wrong type, a trailing object), hoping "
        "the checking tool gives up where the runtime does not.",
        (
            ("Walk the outer tar to the end: tar reports a truncated or damaged archive", "tar -tvf IMAGE.tar"),
            ("Parse the document the finding names", "tar -xOf IMAGE.tar index.json | jq ."),
            (
                "Decompress and walk a layer to its end",
                "tar -xOf IMAGE.tar blobs/sha256/<layer-hex> | gzip -dc | tar -tvf - > /dev/null",
            ),
        ),
        (
            "An incomplete copy or download (compare the file's size and sha256 with the source).",
            "Exporters that write `null` where the specification wants a list or an object (reported low, "
            "as wrongly typed values).",
        ),
    ),
    "archive.unsafe-path": Teaching(
        "high",
        "An entry named /etc/x or ../../x, or a link whose target leaves the root, makes a naive "
        "`tar -x` or a careless unpacker write outside the directory it extracts into: on the host, not in "
        "the image.",
        "Add an entry named ../../root/.ssh/authorized_keys, or a symlink that climbs out of the root "
        "followed by a file written through it, to the outer tar or to a layer; fix every digest up.",
        (
            (
                "List entry names that are absolute or climb with ..",
                "tar -tf IMAGE.tar | grep -E '^/|(^|/)\\.\\.(/|$)'",
            ),
            (
                "The same inside a layer, with link targets",
                "tar -xOf IMAGE.tar blobs/sha256/<layer-hex> | gzip -dc | tar -tvf - | grep -E ' \\.\\./|/\\.\\./|-> /'",
            ),
        ),
        (
            "Absolute symlink targets inside a layer are normal (they resolve inside the container) and are "
            "not reported; only a target that climbs above the root is.",
        ),
    ),
    "archive.duplicate-entry": Teaching(
        "high when the copies differ, low when they are identical; medium inside a layer",
        "With two copies of one name, one reader keeps the first and another the last: a scanner and a "
        "runtime can see different files from the same archive.",
        "Append a second index.json, manifest or layer with the same name and other content, so that the "
        "copy a checking tool reads is genuine and the copy the runtime reads is not.",
        (
            ("List the names that occur more than once", "tar -tf IMAGE.tar | sort | uniq -d"),
            (
                "Hash each copy: --occurrence picks the first, then the second",
                "tar -xOf IMAGE.tar --occurrence=1 index.json | sha256sum; "
                "tar -xOf IMAGE.tar --occurrence=2 index.json | sha256sum",
            ),
        ),
        (
            "Appending to an archive with `tar -r` or `tar -u` duplicates names; identical copies are low.",
            "Inside a layer, a builder that writes a directory entry twice (harmless when the entries agree).",
        ),
    ),
    "archive.unknown-format": Teaching(
        "high",
        "Without manifest.json or index.json there is no image: no digest, config or history to check, so "
        "nothing in the input can be verified as an image.",
        "Hand over a container filesystem export or a renamed tarball where an image is expected, hoping "
        "that a tool which cannot read it reports nothing.",
        (
            (
                "Look for the layout files at the top of the tar",
                "tar -tf IMAGE.tar | grep -E '^(\\./)?(manifest\\.json|index\\.json|oci-layout|repositories)$'",
            ),
        ),
        (
            "A `docker export` of a container (a plain filesystem tar), a pre-1.10 `docker save` (repositories "
            "and <id>/ folders, no manifest.json), or a tarball of some other kind.",
        ),
    ),
    "archive.extra-entry": Teaching(
        "by what the entry is: an executable or a script higher than a stray text file",
        "No reader of the format looks outside what it defines, so nothing verifies those entries; yet "
        "they travel with the image, and whoever extracts the archive gets them.",
        "Add a script or a binary beside index.json or under a directory no descriptor names, to ride along "
        "with a signed and verified image into a place that unpacks the whole archive.",
        (
            (
                "List what lies outside oci-layout, index.json and blobs/",
                "tar -tf IMAGE.tar | grep -vE '^(\\./)?(oci-layout|index\\.json|manifest\\.json|repositories|blobs/.*)$'",
            ),
        ),
        ("A layout directory that an operator or an editor left a file in (a README, a .DS_Store, a backup).",),
    ),
    "archive.limit-exceeded": Teaching(
        "high",
        "A safety limit (entries, path length or depth, JSON size or nesting, decompressed size or ratio, "
        "history length) stopped part of the analysis: nothing beyond it is verified.",
        "Push the payload past a limit, behind a million empty files, a deeply nested path or a layer that "
        "inflates a thousandfold, so that the analysis stops before it reaches the payload.",
        (
            ("Count the archive's entries", "tar -tf IMAGE.tar | wc -l"),
            (
                "Measure what a layer decompresses to, and count its entries",
                "tar -xOf IMAGE.tar blobs/sha256/<layer-hex> | gzip -dc | wc -c; "
                "tar -xOf IMAGE.tar blobs/sha256/<layer-hex> | gzip -dc | tar -tf - | wc -l",
            ),
        ),
        (
            "A genuinely huge image (a machine-learning image with multi-gigabyte layers); the finding names "
            "the limit and its value, README 'Limits' says how far a real image stays below each one.",
        ),
    ),
    "blob.digest-mismatch": Teaching(
        "critical",
        "A blob is addressed by the sha256 of its bytes: when they differ, the bytes were changed after the "
        "name was written, and whatever the name vouches for (a signature, a pin, a registry) no longer holds.",
        "Edit a layer, the config or a manifest in place and leave its name and the descriptors pointing at "
        "it unchanged, betting that consumers trust the name without hashing the bytes.",
        (
            (
                "Hash the blob; a blob's name is the sha256 of its bytes",
                "tar -xOf IMAGE.tar blobs/sha256/<blob-hex> | sha256sum",
            ),
            (
                "In a docker save, the config's file name is the image ID",
                "tar -xOf IMAGE.tar manifest.json | jq -r '.[].Config'",
            ),
        ),
        ("None from a real tool. Bytes damaged in storage or transfer give it too (compare with the source).",),
    ),
    "blob.size-mismatch": Teaching(
        "high",
        "A descriptor records the blob's size with its digest; a wrong size means the descriptor was not "
        "written for these bytes, and consumers that stream exactly `size` bytes read something else.",
        "Change a blob and re-digest the manifest but forget the size, or set a size that makes a reader "
        "stop early or read past the blob.",
        (
            ("Count the blob's bytes", "tar -xOf IMAGE.tar blobs/sha256/<blob-hex> | wc -c"),
            (
                "Read the size the manifest declares",
                "tar -xOf IMAGE.tar blobs/sha256/<manifest-hex> | jq '.layers[] | .digest, .size'",
            ),
        ),
        ("None from a real tool.",),
    ),
    "blob.missing": Teaching(
        "high (low for a part of a signature or attestation)",
        "A layer, config or manifest that is named but absent cannot be verified, and the image cannot be "
        "loaded as described: whatever fills the gap later (a registry, a cache) is trusted blindly.",
        "Drop a layer from the archive so that a loader fetches it from elsewhere, or so that a checking "
        "tool skips what it cannot find.",
        (
            _MANIFEST,
            ("Look for the blob in the archive", "tar -tf IMAGE.tar | grep <blob-hex>"),
        ),
        ("An export cut short, or a layout assembled by hand.",),
    ),
    "blob.not-exported": Teaching(
        "info",
        "The index names a platform manifest, attestation or referrer the export left out; nothing in it "
        "can be verified here, but the image-layout specification allows it.",
        "Not an attack by itself: containerd and Docker 25+ exports leave out platforms that were not pulled.",
        (
            (
                "List what the index names, with platforms",
                "tar -xOf IMAGE.tar index.json | jq -r '.manifests[] | .digest + \" \" + (.platform | tostring)'",
            ),
            ("Look for one of them in the archive", "tar -tf IMAGE.tar | grep <blob-hex>"),
        ),
        ("It is never a sign of tampering: a multi-platform image exported for one platform gives it.",),
    ),
    "blob.foreign": Teaching(
        "low",
        "A foreign or non-distributable layer lives outside the archive by design (its descriptor carries "
        "`urls`); its content cannot be verified here.",
        "Point a layer's `urls` at a server the attacker controls, so the layer is fetched from there at load time.",
        (
            (
                "Show the layer descriptors that carry urls",
                "tar -xOf IMAGE.tar blobs/sha256/<manifest-hex> | jq '.layers[] | select(.urls)'",
            ),
        ),
        ("Windows base images (their base layers are foreign by licence).",),
    ),
    "blob.unreferenced": Teaching(
        "medium for a layer no image uses, low for other data, info for a legacy v1 JSON",
        "A blob nothing refers to is never verified against a descriptor; it is a place to carry content "
        "past tools that only follow references.",
        "Add a layer or a payload under blobs/sha256/, correctly named, that no manifest lists.",
        (
            ("List the blobs", "tar -tf IMAGE.tar | grep '^\\(\\./\\)\\?blobs/sha256/'"),
            (
                "List every digest the documents name",
                "tar -xOf IMAGE.tar blobs/sha256/<manifest-hex> | jq -r '.. | .digest? // empty'",
            ),
        ),
        (
            "Docker 25+ writes one legacy v1 image JSON per layer (info).",
            "A layout directory reused by `skopeo copy` keeps the blobs of the image it held before.",
        ),
    ),
    "blob.media-type-mismatch": Teaching(
        "medium",
        "The media type says how to read a blob; when it disagrees with the bytes, readers that trust the "
        "label and readers that sniff the bytes unpack different things.",
        "Label a zstd or plain layer as gzip (or the reverse) so that one tool fails or skips it while another reads it.",
        (
            (
                "Read the declared media types",
                "tar -xOf IMAGE.tar blobs/sha256/<manifest-hex> | jq -r '.layers[].mediaType'",
            ),
            (
                "Look at the first bytes: 1f 8b is gzip, 28 b5 2f fd is zstd",
                "tar -xOf IMAGE.tar blobs/sha256/<layer-hex> | head -c 4 | od -An -tx1",
            ),
        ),
        ("Layouts written by hand or by ad-hoc scripts that label every layer tar+gzip.",),
    ),
    "layer.diffid-mismatch": Teaching(
        "critical (high when the layer is truncated)",
        "The image ID is the sha256 of the config, and the config pins each layer by the sha256 of its "
        "uncompressed tar (rootfs.diff_ids). A layer whose tar hashes differently is not the layer the image "
        "ID, a signature or a pin was computed over.",
        "Swap a layer for another, re-digest the compressed blob and the manifest so every blob digest "
        "matches, and leave the config untouched so the image ID stays the one that was approved.",
        (
            _MANIFEST,
            (
                "Read the diff_id the config declares for layer <i>",
                "tar -xOf IMAGE.tar blobs/sha256/<config-hex> | jq -r '.rootfs.diff_ids[<i>]'",
            ),
            (
                "Decompress the layer and hash the tar: this is its real diff_id",
                "tar -xOf IMAGE.tar blobs/sha256/<layer-hex> | gzip -dc | sha256sum",
            ),
        ),
        ("None from a real tool. A layer damaged in transfer also gives it (then archive.malformed too).",),
    ),
    "layer.count-mismatch": Teaching(
        "high",
        "The manifest's layers and the config's rootfs.diff_ids must pair one to one; with a different "
        "count, some layer is not covered by the image ID, or the image ID covers a layer that is not there.",
        "Append a layer to the manifest without touching the config (or the reverse), hoping a loader "
        "applies it while the image ID still matches.",
        (
            (
                "Count both lists",
                "tar -xOf IMAGE.tar blobs/sha256/<manifest-hex> | jq '.layers | length'; "
                "tar -xOf IMAGE.tar blobs/sha256/<config-hex> | jq '.rootfs.diff_ids | length'",
            ),
        ),
        ("None from a real tool.",),
    ),
    "ref.conflict": Teaching(
        "medium",
        "One tag pointing at two images means the image you get by that name depends on which file a tool "
        "reads: manifest.json, repositories or index.json.",
        "Give the tag to the genuine image in one place and to a forged image in another, so a reviewer and "
        "a loader resolve the same name to different images.",
        (
            (
                "Tags in manifest.json",
                "tar -xOf IMAGE.tar manifest.json | jq -r '.[] | .Config + \" \" + (.RepoTags | tostring)'",
            ),
            ("Tags in repositories", "tar -xOf IMAGE.tar repositories | jq ."),
            (
                "Names in index.json",
                'tar -xOf IMAGE.tar index.json | jq -r \'.manifests[] | .digest + " " + '
                '(.annotations["org.opencontainers.image.ref.name"] // "")\'',
            ),
        ),
        ("An archive merged by hand from two saves of a tag that moved between them.",),
    ),
    "ref.pin-mismatch": Teaching(
        "critical",
        "You deployed by digest: the archive holds no manifest, index or config with the digest you pinned, "
        "so it is not the image you approved.",
        "Hand over a different image under the expected name and tag, betting that only the tag is checked.",
        (
            (
                "List the manifest digests the archive holds",
                "tar -xOf IMAGE.tar index.json | jq -r '.manifests[].digest'",
            ),
            ("Hash the manifest blob yourself", "tar -xOf IMAGE.tar blobs/sha256/<manifest-hex> | sha256sum"),
        ),
        (
            "You pinned the registry's multi-platform index, and the export holds only one platform's manifest.",
            "A graphdriver `docker save` holds no manifest blob: only the image ID (the config digest) can be pinned.",
        ),
    ),
    "history.count-mismatch": Teaching(
        "medium",
        "Each history entry without empty_layer owns one layer, in order; with a different count, steps and "
        "layers cannot be paired, and a layer may be attributed to a step that did not make it.",
        "Insert or delete a history entry to shift the pairing, so that a poisoned layer sits under an "
        "innocent-looking line.",
        (
            (
                "Count the layer-owning entries and the diff_ids",
                "tar -xOf IMAGE.tar blobs/sha256/<config-hex> | "
                "jq '([.history[] | select(.empty_layer != true)] | length), (.rootfs.diff_ids | length)'",
            ),
        ),
        ("Old squash tools that merge layers without marking the merged steps empty_layer.",),
    ),
    "history.empty-layer-mismatch": Teaching(
        "high for a file-writing layer marked empty, medium for a metadata step owning a layer",
        "The empty_layer flags decide which step owns which layer; a wrong flag moves every later layer to "
        "another step.",
        "Mark the poisoned RUN empty_layer so its layer is attributed to the next step, or give an ENV a layer.",
        (
            (
                "Show each step's flag",
                "tar -xOf IMAGE.tar blobs/sha256/<config-hex> | jq -c '.history[] | [.empty_layer, .created_by]'",
            ),
            _LAYER_LIST,
        ),
        ("A builder that keeps an empty tar for a step that changed nothing (it holds no entries).",),
    ),
    "history.unexplained-change": Teaching(
        "graded: higher when the path existed below, is executable, belongs to a package the step did not "
        "touch, or is a persistence point",
        "History is editable metadata: a step whose layer changes paths its command does not account for may "
        "have had its line rewritten to hide what it did.",
        "Build with a poisoned RUN, then rewrite created_by to the genuine image's line and re-pack with "
        "every digest consistent: history-only comparisons then report no difference.",
        (_STEP, _LAYER_LIST),
        (
            "Steps that run programs the analysis cannot see into (an installer script, a build) write files no "
            "claim names; such findings say the step runs unseen code and are weaker evidence.",
            "Caches and state that tools write beside their work (e.g. /root/.cache, /var/cache).",
        ),
    ),
    "history.package-file-modified": Teaching(
        "high, critical for an executable or shared object",
        "A file that differs from the digest its package manager recorded at install is not the file the "
        "package shipped: the classic place for a trojaned binary in an otherwise honest image.",
        "Overwrite /usr/bin/<tool> in a later layer, or in the install layer itself together with the "
        "recorded digest (then the record is same-step and proves nothing).",
        (
            (
                "Hash the file (md5 for dpkg md5sums, sha256 for rpm, apk v3 and pip RECORD)",
                "tar -xOf IMAGE.tar blobs/sha256/<layer-hex> | gzip -dc | tar -xOf - <path> | md5sum",
            ),
            (
                "Read the recorded digest, from the layer that holds the package record",
                "tar -xOf IMAGE.tar blobs/sha256/<layer-hex> | gzip -dc | tar -xOf - --wildcards 'var/lib/dpkg/info/*.md5sums' | grep ' <path>$'",
            ),
        ),
        (
            "A step that edits a conffile (sed -i) is explained only when its command names the file.",
            "dpkg-divert and update-alternatives move files; a diverted path is not the package's file.",
            "npm records no per-file digest: an npm file is held to the package's tarball in npm's cache "
            "(~/.npm/_cacache/content-v2/sha512/, named by the lockfile's integrity), when the build kept it; "
            "the integrity can be checked against the registry, which publishes it for every version.",
        ),
    ),
    "history.effect-mismatch": Teaching(
        "high, critical for an executable or a persistence point; info for config values no step records",
        "The step's own command says what it produces at that path (a symlink, these bytes, a copy, modes "
        "only, an account entry, a COPY with this source hash), and the layer holds something else: the "
        "history line is not what made the layer.",
        "Keep the genuine command line and ship a layer where `ln -s` made a script, `chmod` changed content, "
        "`echo x > f` wrote other bytes, or a COPY's files do not match the recorded hash.",
        (
            _STEP,
            _LAYER_LIST,
            _FILE_HEAD,
        ),
        (
            "A claim inside `if`, `||` or a loop is only a possibility and is not held as a contradiction.",
            "Config values (Env, Cmd) set by a `docker commit` on a built image, which records no step, are info.",
        ),
    ),
    "history.time-anomaly": Teaching(
        "medium for history and config times, low for file times",
        "Times that go backwards, lie in the future or postdate their step show entries edited or inserted "
        "after the build; weak evidence alone, strong beside other findings.",
        "Insert or rewrite history entries with made-up times, or add files to a layer long after it was built.",
        (
            (
                "Show the history times",
                "tar -xOf IMAGE.tar blobs/sha256/<config-hex> | jq -r '.created, .history[].created'",
            ),
            (
                "Show the file times of a layer",
                "tar -xOf IMAGE.tar blobs/sha256/<layer-hex> | gzip -dc | tar -tvf - --full-time",
            ),
        ),
        (
            "Reproducible builds (SOURCE_DATE_EPOCH) that clamp history times but not every file time.",
            "A build host whose clock was wrong.",
        ),
    ),
    "file.binary-replaced": Teaching(
        "critical, medium when a package the step installed ships the replacement",
        "A program replaced by a script (or another kind of file) is the classic trojan wrapper: it runs the "
        "payload, then the real program, and looks the same to its caller.",
        "Move the ELF aside and put a shell script in its place that does its work and then execs the original.",
        (
            _FILE_HEAD,
            (
                "The same path in the lower layer",
                "tar -xOf IMAGE.tar blobs/sha256/<layer-hex> | gzip -dc | tar -tvf - <path>",
            ),
        ),
        ("Packages that replace a binary by a wrapper script (graded medium when a package ships it).",),
    ),
    "file.setuid-added": Teaching(
        "info when a package ships it, low, medium when the step's explanation is weak",
        "A setuid or setgid file runs with its owner's privileges: a way back to root from any user in the container.",
        "Drop a setuid-root shell or helper into a layer, or chmod u+s a program a package shipped.",
        (
            (
                "List the setuid and setgid files of a layer",
                "tar -xOf IMAGE.tar blobs/sha256/<layer-hex> | gzip -dc | tar -tvf - | grep -E '^-..[sS]|^-.....[sS]'",
            ),
        ),
        ("Packages that ship setuid programs (passwd, su, mount): info.",),
    ),
    "file.persistence": Teaching(
        "graded by the point and by what explains it; never below medium when unexplained",
        "ld.so.preload, cron, systemd units, authorized_keys, shell profiles, PAM and sudoers run code or "
        "grant access outside the program the image is for.",
        "Write /etc/ld.so.preload or a key into /root/.ssh/authorized_keys in a step whose line says something else.",
        (
            (
                "List persistence points a layer writes",
                "tar -xOf IMAGE.tar blobs/sha256/<layer-hex> | gzip -dc | tar -tvf - | "
                "grep -E 'ld\\.so\\.preload|cron|authorized_keys|profile|systemd|sudoers|pam\\.d'",
            ),
            _STEP,
        ),
        (
            "Base images and packages that ship cron jobs, units or profiles (explained by the package install).",
            "useradd -m copying /etc/skel into a new home.",
        ),
    ),
    "file.known-bad": Teaching(
        "high",
        "The file's bytes are, exactly, a file you already know to be malicious (an implant, a miner, a tool "
        "from an earlier incident): no history line, package record or signature makes it benign, and every "
        "host that pulls the image receives it, even when a later layer deletes it.",
        "Reuse a known implant or tool in an image, often under a harmless name or in a layer a later step "
        "deletes it from, so that the final filesystem looks clean.",
        (
            (
                "Extract the file as that layer holds it, with its hashes and provenance",
                "forensics extract IMAGE.tar <path> --layer <n> -o evidence/",
            ),
            (
                "Hash the file straight from the layer and look it up in the set",
                "tar -xOf IMAGE.tar blobs/sha256/<layer-hex> | gzip -dc | tar -xOf - <path> | sha256sum",
            ),
            ("List every file of the image with its hashes, for hashdeep -k", "forensics hashes IMAGE.tar"),
        ),
        (
            "A hash set that lists common benign files (the empty file's sha256 is e3b0c442...b855).",
            "A set built from a whole image or an NSRL-style known-files list, given as --known-bad instead "
            "of --known-good.",
        ),
    ),
    "signature.verified": Teaching(
        "info",
        "A signature over a manifest the archive holds verifies with a key or root you supplied: the manifest "
        "(and, through its digests, every blob) is what the signer signed.",
        "Not an attack. An attacker's own key verifies too: check which key or identity it names.",
        (
            ("Read the signature manifest", "tar -xOf IMAGE.tar blobs/sha256/<manifest-hex> | jq ."),
            (
                "Read the digest the signed payload names (cosign simple signing)",
                "tar -xOf IMAGE.tar blobs/sha256/<blob-hex> | jq -r '.critical.image[\"docker-manifest-digest\"]'",
            ),
        ),
        ("None: it states a verification.",),
    ),
    "signature.invalid": Teaching(
        "critical (low, as signature.unverified, when nothing was given to verify with)",
        "A signature that does not verify, or that signs a payload naming another digest, vouches for nothing; "
        "shipped beside an image, it suggests the image was changed after signing.",
        "Change the image and keep the old signature, or copy a valid signature of another image.",
        (
            (
                "Extract the payload and the signature, then verify with the public key",
                "tar -xOf IMAGE.tar blobs/sha256/<blob-hex> > payload.json; openssl dgst -sha256 -verify key.pub "
                "-signature sig.bin payload.json",
            ),
        ),
        ("The wrong key supplied.",),
    ),
    "signature.subject-mismatch": Teaching(
        "high (low when an index names the subject but the export left it out)",
        "A signature or attestation about a manifest the archive does not hold (or whose bytes do not hash to "
        "it) does not vouch for this image.",
        "Ship the genuine image's signature beside a forged image.",
        (
            (
                "Read the subject the signature names",
                "tar -xOf IMAGE.tar blobs/sha256/<manifest-hex> | jq -r '.subject.digest'",
            ),
            ("Look for it in the archive", "tar -tf IMAGE.tar | grep <blob-hex>"),
        ),
        ("Signatures of other platforms of a multi-platform image whose manifests were not exported.",),
    ),
    "signature.unverified": Teaching(
        "low (info for a signer not given when another signature of the manifest verified)",
        "Signatures are present but nothing was given to verify them with: their presence proves nothing.",
        "Ship any signature at all, betting that its presence is taken for a verification.",
        (
            (
                "List the signature manifests",
                "tar -xOf IMAGE.tar index.json | jq -r '.manifests[] | .digest, .artifactType'",
            ),
        ),
        ("Expected when you scan without a key or trusted root.",),
    ),
    "attestation.sbom-mismatch": Teaching(
        "medium (low for an SBOM package no database in the layers records)",
        "Vulnerability and licence scanners read the SBOM instead of the image: a package it omits is hidden from "
        "them, a wrong version is matched against the wrong advisories.",
        "Build a poisoned image (add a backdoored package, or keep a vulnerable version) and attach the SBOM of "
        "the genuine build, so `trivy sbom` and `grype sbom:` report it clean.",
        (
            (
                "Read the SBOM's packages (SPDX, then CycloneDX)",
                "tar -xOf IMAGE.tar blobs/sha256/<blob-hex> | jq -r '.predicate.packages[] | .name + \" \" + .versionInfo'; "
                "tar -xOf IMAGE.tar blobs/sha256/<blob-hex> | jq -r '.predicate.components[] | .name + \" \" + .version'",
            ),
            (
                "Read what dpkg recorded in the image",
                "tar -xOf IMAGE.tar blobs/sha256/<layer-hex> | gzip -dc | tar -xOf - var/lib/dpkg/status | grep -E '^(Package|Version):'",
            ),
            (
                "List what the layers hold as an SBOM of its own, to diff",
                "forensics scan IMAGE.tar --cyclonedx - -q | jq -r '.components[] | select(.purl) | .purl'",
            ),
        ),
        (
            "SBOM generators that list packages removed in a later layer, or omit statically linked ones.",
            "Generators that skip an ecosystem (no pip or npm cataloguer): one finding for the whole ecosystem.",
        ),
    ),
    "compare.history-equal-content-differs": Teaching(
        "critical, high when a side misses layers",
        "Two images whose history lines are identical but whose files differ: comparing histories alone would "
        "have passed the forged one. This is the seed attack of this project.",
        "Rewrite the forged image's history to the genuine image's lines and re-pack it with every digest consistent.",
        (
            (
                "Compare the history lines",
                "diff <(tar -xOf A.tar blobs/sha256/<config-hex> | jq -r '.history[].created_by') "
                "<(tar -xOf B.tar blobs/sha256/<config-hex> | jq -r '.history[].created_by')",
            ),
            (
                "Hash one of the differing files in each image",
                "tar -xOf A.tar blobs/sha256/<layer-hex> | gzip -dc | tar -xOf - <path> | sha256sum",
            ),
        ),
        ("A rebuild from the same Dockerfile whose downloads changed (content differs for a real reason).",),
    ),
    "compare.content-differs": Teaching(
        "by what differs: executables and persistence points higher",
        "A path that differs between two images that should be the same build.",
        "Change one file in a rebuild, hoping it hides among rebuild noise (timestamps, caches).",
        (
            (
                "Hash the path in each image",
                "tar -xOf A.tar blobs/sha256/<layer-hex> | gzip -dc | tar -xOf - <path> | sha256sum",
            ),
        ),
        ("Rebuild noise (timestamps, .pyc headers, generated ids) that the diff did not class as noise.",),
    ),
}

# Said once, after any entry's commands.
LAYOUT_NOTE = (
    "The commands are written for an OCI archive. For a layout directory use `cat DIR/<member>` "
    "(or `sha256sum DIR/blobs/sha256/<hex>`) instead of `tar -xOf IMAGE.tar <member>`; in a docker save, "
    "manifest.json names the config and layer files (`jq -r '.[].Config, .[].Layers[]'`). "
    "`forensics explain IMAGE.tar` prints every command with the real names."
)
