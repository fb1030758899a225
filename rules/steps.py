"""The work each task does, and the checks that tell whether it needs doing.

Every step reads small JSON records and writes one, rewriting it only when its content
changes, so that doit (through its file checks) reruns exactly what depends on a real
change. The records of one image for one platform live in ``out/build/<os>_<arch>/<name>``:

``copies.json`` and ``config.json`` (parse), ``layer-K.inputs.json`` and ``tree.json``
(translate), ``layer-K.json`` (layer), ``image.json`` (image).

No doit here: rules.tasks turns these into tasks.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from doit_oci.registry import oci, pull, reference
from doit_oci.registry.errors import RegistryError
from doit_oci.registry.files import write_if_changed
from doit_oci.registry.layout import Layout
from doit_oci.registry.pull import ResolvedBase
from doit_oci.registry.push import Destination, Origin, Progress, Pusher, destinations
from doit_oci.rules.build import Build, Output, Unit
from doit_oci.rules.digests import DigestCache
from doit_oci.rules.dockerfile import CopyStep, evaluate
from doit_oci.rules.errors import UserError
from doit_oci.rules.layer import LayerBlob, write_layer
from doit_oci.rules.progress import progress_display
from doit_oci.rules.translate import Context, ContextDir, PlanContext, plan_copy
from doit_oci.rules.tree import Entry, Tree

if TYPE_CHECKING:  # httpx and the client are imported only when a registry is used
    from doit_oci.registry.client import Clients, RegistryClient


def _dump(document: Any) -> bytes:
    return json.dumps(document, sort_keys=True, indent=1, ensure_ascii=False).encode() + b"\n"


def _load(path: Path) -> Any:
    return json.loads(path.read_bytes())


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def created_at(epoch: int) -> str:
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class Steps:
    def __init__(self, build: Build, environ: Mapping[str, str]) -> None:
        self.build = build
        self.workspace = build.workspace
        self.layout = Layout(build.layout_dir, build.state / "tmp")
        self.digests = DigestCache(build.state / "cache" / "digests.sqlite")
        self.environ = environ
        self._clients: Clients | None = None

    # -- what the base gives ------------------------------------------------------------

    @property
    def clients(self) -> Clients:
        from doit_oci.registry.client import Clients
        from doit_oci.registry.transport import RetryPolicy

        if self._clients is None:
            options = self.build.options
            policy = RetryPolicy(deadline=options.registry_deadline)
            self._clients = Clients(self.environ, options.insecure, policy, on_retry=_warn)
        return self._clients

    def _base(self, unit: Unit) -> tuple[oci.Descriptor, oci.Descriptor] | None:
        """The (manifest, config) of what ``unit`` builds on; None for scratch."""
        if unit.base_key:
            record = _load(self.build.unit(unit.base_key).image_record)
            return (
                oci.Descriptor.from_json(record["manifest"]),
                oci.Descriptor.from_json(record["config"]),
            )
        if unit.base_ref:
            resolved = ResolvedBase.from_json(_load(unit.base_record))
            return resolved.manifest, resolved.config
        return None

    def base_config(self, unit: Unit) -> oci.ImageConfig | None:
        base = self._base(unit)
        if base is None:
            return None
        data = self.layout.read(base[1].digest)
        return oci.ImageConfig.from_json(oci.parse_json_document(data, "base config"))

    def base_manifest(self, unit: Unit) -> oci.Manifest | None:
        base = self._base(unit)
        if base is None:
            return None
        data = self.layout.read(base[0].digest)
        return oci.Manifest.from_json(oci.parse_json_document(data, "base manifest"))

    def lower_tree(self, unit: Unit) -> Tree:
        if unit.base_key:
            data = _load(self.build.unit(unit.base_key).tree)
            return Tree((Entry.from_json(e) for e in data["entries"]), data["complete"])
        # a registry base's layers are never read: what it holds is unknown
        return Tree(complete=not unit.base_ref)

    # -- registry bases -------------------------------------------------------------------

    def resolve_base(self, unit: Unit) -> None:
        ref = reference.parse(unit.base_ref)
        client = self.clients.get(ref.registry)
        resolved = pull.resolve(client, ref, unit.platform, self.layout)
        if not self.build.options.push:
            # the layout holds whole images: bring the base's layers into the store once
            for layer in resolved.layers:
                if not self.layout.has_blob(layer.digest):
                    pull.fetch_blob(client, ref.path, layer, self.layout)
        write_if_changed(unit.base_record, _dump(resolved.to_json()))

    def base_uptodate(self, unit: Unit) -> bool:
        """Resolved before, blobs at hand, and (for a tag) the tag still points there: a
        HEAD request. A base pinned by digest is never asked for again."""
        try:
            resolved = ResolvedBase.from_json(_load(unit.base_record))
        except Exception:  # whatever it is, the task reports it when it runs
            return False
        needed = [resolved.manifest, resolved.config]
        if not self.build.options.push:
            needed.extend(resolved.layers)
        if not all(self.layout.has_blob(d.digest) for d in needed):
            return False
        ref = reference.parse(unit.base_ref)
        if ref.digest:
            return True
        try:
            head = self.clients.get(ref.registry).head_manifest(ref.path, ref.identifier)
        except RegistryError:
            return False
        return head is not None and head.digest == resolved.top

    # -- parse ----------------------------------------------------------------------------

    def parse_records(self, unit: Unit) -> tuple[bytes, bytes, tuple[str, ...]]:
        spec = evaluate(unit.chain, dict(unit.build_args), self.base_config(unit))
        copies = _dump({"copies": [step.to_json() for step in spec.copies]})
        config = _dump(
            {
                "config": spec.config.to_json(),
                "author": spec.author,
                "history": [[step.created_by, step.layer] for step in spec.history],
            }
        )
        if len(spec.copies) != unit.layer_count:
            raise AssertionError("layer count changed between task creation and parse")
        return copies, config, spec.warnings

    def parse(self, unit: Unit) -> None:
        copies, config, warnings = self.parse_records(unit)
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
        write_if_changed(unit.copies, copies)
        write_if_changed(unit.config, config)

    # -- translate --------------------------------------------------------------------------

    def context(self, unit: Unit) -> Context:
        image = unit.image
        if image.context is not None:
            return ContextDir(image.context, self.workspace)
        deps = (image.dockerfile, *image.dependencies(self.workspace))
        platform = unit.platform
        arch_out = self.workspace / "out" / f"{platform.os}_{platform.architecture}"
        return PlanContext(deps, self.workspace, arch_out, platform.architecture)

    def translate_records(self, unit: Unit) -> tuple[list[bytes], bytes]:
        copies = [CopyStep.from_json(c) for c in _load(unit.copies)["copies"]]
        context = self.context(unit)
        tree = self.lower_tree(unit)
        records = []
        for step in copies:
            entries = plan_copy(
                step,
                context if step.keyword != "WORKDIR" else None,
                tree,
                self.workspace,
                self.digests.digest,
            )
            tree.add(entries)
            records.append(_dump({"entries": [e.to_json() for e in entries]}))
        return records, _dump({"complete": tree.complete, "entries": tree.to_json()})

    def translate_uptodate(self, unit: Unit) -> bool:
        """Up to date when recomputing gives the records on disk (stats and cached
        digests only: unchanged files are not hashed again). Never made: not up to date,
        and its files are hashed by the task (in a worker), not here."""
        if not unit.tree.exists():
            return False
        try:
            records, tree = self.translate_records(unit)
        except Exception:  # whatever it is, the task reports it when it runs
            return False
        paths = [unit.inputs(i) for i in range(len(records))]
        return _same(paths, records) and _same([unit.tree], [tree])

    def translate(self, unit: Unit) -> None:
        records, tree = self.translate_records(unit)
        for index, record in enumerate(records):
            write_if_changed(unit.inputs(index), record)
        write_if_changed(unit.tree, tree)

    # -- layer ----------------------------------------------------------------------------

    def layer(self, unit: Unit, index: int) -> None:
        entries = [Entry.from_json(e) for e in _load(unit.inputs(index))["entries"]]
        made_from = _made_from([unit.inputs(index)])
        if not entries:
            write_if_changed(unit.layer(index), _dump({"empty": True, "from": made_from}))
            return
        options = self.build.options
        cached = self.cached_layer(unit, index)
        if cached is not None:
            write_if_changed(
                unit.layer(index),
                _dump({**cached.to_json(), "from": made_from, "cached": options.cache_repo}),
            )
            return
        blob = write_layer(
            entries,
            self.workspace,
            self.layout,
            options.layer_compression,
            options.epoch,
            self.digests.known,
        )
        write_if_changed(unit.layer(index), _dump({**blob.to_json(), "from": made_from}))
        self.cache_layer(unit, index, blob)

    # -- the remote layer cache (--cache-repo) ------------------------------------------------

    def _cache(self) -> tuple[Any, RegistryClient] | None:
        if not self.build.options.cache_repo:
            return None
        from doit_oci.rules.layercache import CacheRepo

        repo = CacheRepo.parse(self.build.options.cache_repo)
        return repo, self.clients.get(repo.registry)

    def _cache_key(self, unit: Unit, index: int) -> str:
        from doit_oci.rules.layercache import cache_key

        options = self.build.options
        return cache_key(unit.inputs(index).read_bytes(), options.layer_compression, options.epoch)

    def cached_layer(self, unit: Unit, index: int) -> LayerBlob | None:
        """The layer any runner made from the same inputs, from the cache repository; its
        blob is fetched into the store unless this run pushes (then it is mounted)."""
        cache = self._cache()
        if cache is None:
            return None
        from doit_oci.rules.layercache import lookup

        repo, client = cache
        try:
            hit = lookup(client, repo, self._cache_key(unit, index), warn=_warn)
        except RegistryError as exc:
            _warn(f"layer cache {repo}: {exc}; building the layer")
            return None
        local = hit is None or self.layout.has_blob(hit.descriptor.digest)
        if hit is not None and not local and not self.build.options.push:
            pull.fetch_blob(client, repo.repository, hit.descriptor, self.layout)
        return hit

    def cache_layer(self, unit: Unit, index: int, blob: LayerBlob) -> None:
        """Put a layer this run made into the cache repository, for the next runner."""
        cache = self._cache()
        if cache is None:
            return
        from doit_oci.registry.client import BlobSource
        from doit_oci.rules.layercache import store

        repo, client = cache
        source = BlobSource.from_file(
            self.layout.blob_path(blob.descriptor.digest), blob.descriptor.digest
        )
        try:
            store(client, repo, self._cache_key(unit, index), blob, source)
        except RegistryError as exc:
            _warn(f"layer cache {repo}: {exc}; the layer is not cached")

    def layer_uptodate(self, unit: Unit, index: int) -> bool:
        """The blob the record names is still in the store."""
        try:
            record = _load(unit.layer(index))
        except (OSError, ValueError):
            return False
        if record.get("empty") or self.layout.has_blob(record["descriptor"]["digest"]):
            return True
        # a layer taken from the cache repository is mounted from there when pushing
        options = self.build.options
        return bool(options.push and record.get("cached") == options.cache_repo)

    # -- image ----------------------------------------------------------------------------

    def image_documents(self, unit: Unit) -> tuple[oci.ImageConfig, oci.Manifest]:
        spec = _load(unit.config)
        layers: list[LayerBlob | None] = []
        for index in range(unit.layer_count):
            record = _load(unit.layer(index))
            layers.append(None if record.get("empty") else LayerBlob.from_json(record))
        base = self.base_config(unit)
        base_manifest = self.base_manifest(unit)
        created = created_at(self.build.options.epoch)
        history = list(base.history) if base else []
        for created_by, layer in spec["history"]:
            empty = layer is None or layers[layer] is None
            history.append(oci.HistoryEntry(created, created_by, empty_layer=empty))
        ours = [layer for layer in layers if layer is not None]
        if not ours and not (base and base.diff_ids):
            # an OCI manifest holds at least one layer: give a file-less image an empty one
            ours.append(self.empty_layer())
            history.append(
                oci.HistoryEntry(
                    created, "", comment="doit-oci: empty layer (an OCI image has at least one)"
                )
            )
        config = oci.ImageConfig(
            architecture=unit.platform.architecture,
            os=unit.platform.os,
            variant=unit.platform.variant,
            created=created,
            author=spec["author"],
            config=oci.ContainerConfig.from_json(spec["config"]),
            diff_ids=(base.diff_ids if base else ()) + tuple(layer.diff_id for layer in ours),
            history=tuple(history),
        )
        config_descriptor = oci.describe(oci.CONFIG, config.to_bytes())
        manifest = oci.Manifest(
            config=config_descriptor,
            layers=(base_manifest.layers if base_manifest else ())
            + tuple(layer.descriptor for layer in ours),
        )
        return config, manifest

    def empty_layer(self) -> LayerBlob:
        return write_layer(
            [],
            self.workspace,
            self.layout,
            self.build.options.layer_compression,
            self.build.options.epoch,
        )

    def image(self, unit: Unit) -> None:
        config, manifest = self.image_documents(unit)
        config_descriptor = self.layout.put(oci.CONFIG, config.to_bytes())
        manifest_descriptor = self.layout.put(oci.MANIFEST, manifest.to_bytes())
        record = {
            "manifest": oci.Descriptor(
                manifest_descriptor.media_type,
                manifest_descriptor.digest,
                manifest_descriptor.size,
                platform=unit.platform,
            ).to_json(),
            "config": config_descriptor.to_json(),
            "layers": len(manifest.layers),
            "from": _made_from(self.image_inputs(unit)),
        }
        write_if_changed(unit.image_record, _dump(record))

    def image_inputs(self, unit: Unit) -> list[Path]:
        """The records an image is assembled from (its config, layers and base)."""
        paths = [unit.config, *(unit.layer(i) for i in range(unit.layer_count))]
        if unit.base_key:
            paths.append(self.build.unit(unit.base_key).image_record)
        elif unit.base_ref:
            paths.append(unit.base_record)
        return paths

    def image_uptodate(self, unit: Unit) -> bool:
        try:
            record = _load(unit.image_record)
        except (OSError, ValueError):
            return False
        return self.layout.has_blob(record["manifest"]["digest"]) and self.layout.has_blob(
            record["config"]["digest"]
        )

    # -- housekeeping -----------------------------------------------------------------------

    def reachable(self) -> set[str]:
        """Every blob an image of this build needs: its manifests (and index), configs and
        layers, and what its bases (plan images or registry bases) hold."""
        roots: list[str] = []
        for unit in self.build.units:
            if unit.image_record.exists():
                roots.append(_load(unit.image_record)["manifest"]["digest"])
            if unit.base_ref and unit.base_record.exists():
                resolved = ResolvedBase.from_json(_load(unit.base_record))
                roots.append(resolved.manifest.digest)
        for output in self.build.outputs:
            with contextlib.suppress(OSError):
                roots.append(self.image_descriptor(output).digest)
        seen: set[str] = set()
        while roots:
            digest = roots.pop()
            if digest in seen:
                continue
            seen.add(digest)
            if not self.layout.has_blob(digest):
                continue
            try:
                document = json.loads(self.layout.read(digest))
            except ValueError:
                continue
            if not isinstance(document, dict):
                continue
            if "manifests" in document:
                roots.extend(m["digest"] for m in document["manifests"])
            if "config" in document and "layers" in document:
                roots.append(document["config"]["digest"])
                roots.extend(layer["digest"] for layer in document["layers"])
        return seen

    def gc(self) -> tuple[int, int, int]:
        """Remove the blobs no image of this build refers to, and the names in
        out/oci/index.json that this build does not give; (removed, bytes, kept)."""
        keep = self.reachable()
        self.layout.init()
        named: dict[str, oci.Descriptor] = {}
        for output in self.build.outputs:
            with contextlib.suppress(OSError):  # not built yet: nothing of it to keep
                descriptor = self.image_descriptor(output)
                named.update((ref, descriptor) for ref in output.ref_names)
        index = self.layout.read_index()
        self.layout.write_index(
            oci.Index(
                oci.sorted_descriptors(
                    [d.annotated(**{oci.REF_NAME: n}) for n, d in named.items()]
                ),
                index.annotations,
            )
        )
        removed = size = kept = 0
        folder = self.layout.root / "blobs" / "sha256"
        for path in sorted(folder.iterdir()):
            if f"sha256:{path.name}" in keep:
                kept += 1
                continue
            size += path.stat().st_size
            path.unlink()
            removed += 1
        if self.layout.tmp_dir.is_dir():
            for leftover in self.layout.tmp_dir.iterdir():
                leftover.unlink()
        return removed, size, kept

    def verify(self) -> list[str]:
        """Hash every blob of the store again: a blob whose bytes are not its name is
        removed (the next build makes it again); a blob an image of this build needs and
        the store lacks is named. The damage found, one line each."""
        damage: list[str] = []
        folder = self.layout.root / "blobs" / "sha256"
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                with open(path, "rb") as handle:
                    actual = hashlib.file_digest(handle, "sha256").hexdigest()
                if actual != path.name:
                    path.unlink()
                    damage.append(f"blob sha256:{path.name} held other bytes: removed")
        for digest in sorted(self.reachable()):
            if not self.layout.has_blob(digest) and not self._remote(digest):
                damage.append(f"blob {digest} is missing from {self.layout.root}")
        return damage

    def _remote(self, digest: str) -> bool:
        """Whether a blob the store lacks lives in a registry (a registry base's layer, or
        a layer of the cache repository, when this run pushes)."""
        origins, _ = self.mount_hints()
        return digest in origins and self.build.options.push

    # -- status -------------------------------------------------------------------------------

    def unit_reasons(self, unit: Unit) -> list[str]:
        """Why ``unit`` would be built again, worked out from the records alone: what its
        steps would read now against what they read when they ran."""
        reasons: list[str] = []
        if unit.base_ref and not self.base_uptodate(unit):
            reasons.append(f"base {unit.base_ref} moved or is not resolved yet")
        if unit.base_key:
            reasons.extend(
                f"base {self.build.unit(unit.base_key).name}: {why}"
                for why in self.unit_reasons(self.build.unit(unit.base_key))
            )
        if not unit.image_record.exists():
            return [*reasons, "never built"]
        try:
            copies, config, _ = self.parse_records(unit)
        except Exception as exc:  # the build reports it; the status names it
            return [*reasons, f"cannot parse: {exc}"]
        if not _same([unit.copies, unit.config], [copies, config]):
            reasons.append(f"{unit.image.dockerfile.name} (or the base's config) changed")
            return reasons
        try:
            records, _ = self.translate_records(unit)
        except Exception as exc:
            return [*reasons, f"cannot find the files to copy: {exc}"]
        for index, record in enumerate(records):
            changed = _changed_paths(unit.inputs(index), record)
            if changed:
                reasons.append(f"layer {index}: {', '.join(changed)} changed")
            elif _load(unit.layer(index)).get("from") != _made_from([unit.inputs(index)]):
                reasons.append(f"layer {index} was made from other inputs")
            elif not self.layer_uptodate(unit, index):
                reasons.append(f"layer {index} is missing from out/oci")
        if not reasons and _load(unit.image_record).get("from") != _made_from(
            self.image_inputs(unit)
        ):
            reasons.append("config or layers changed since the image was assembled")
        return reasons

    def status(self) -> list[tuple[str, str, list[str]]]:
        """(image, digest or "", reasons it is out of date) for every output."""
        rows = []
        for output in self.build.outputs:
            reasons: list[str] = []
            for unit in self.build.units_of(output):
                prefix = f"{unit.platform}: " if len(output.keys) > 1 else ""
                reasons.extend(prefix + why for why in self.unit_reasons(unit))
            try:
                digest = "" if reasons else self.image_descriptor(output).digest
            except Exception:
                digest = ""
            rows.append((output.label, digest, reasons))
        return rows

    # -- the OCI layout ---------------------------------------------------------------------

    def image_descriptor(self, output: Output) -> oci.Descriptor:
        """The image as the outside sees it: its manifest when it is built for one
        platform, an index (kept in the store) over the platforms' manifests otherwise."""
        manifests = [
            oci.Descriptor.from_json(_load(unit.image_record)["manifest"])
            for unit in self.build.units_of(output)
        ]
        if len(manifests) == 1:
            plain = manifests[0]
            return oci.Descriptor(plain.media_type, plain.digest, plain.size)
        return self.layout.put(oci.INDEX, oci.Index(tuple(manifests)).to_bytes())

    def named_descriptors(self) -> dict[str, oci.Descriptor]:
        named: dict[str, oci.Descriptor] = {}
        for output in self.build.outputs:
            descriptor = self.image_descriptor(output)
            for ref_name in output.ref_names:
                named[ref_name] = descriptor
        return named

    @property
    def layout_record(self) -> Path:
        """The names this build gives in out/oci/index.json (which other builds share)."""
        return self.build.state / "build" / self.build.options.scope / "layout.json"

    def write_layout(self) -> None:
        self.layout.init()
        named = self.named_descriptors()
        self.layout.set_refs(named)
        write_if_changed(
            self.layout_record, _dump({name: d.digest for name, d in sorted(named.items())})
        )

    # -- push -------------------------------------------------------------------------------

    def mount_hints(self) -> tuple[dict[str, Origin], dict[str, list[Origin]]]:
        """Where blobs we may not hold can be read (registry bases), and where else in a
        registry they may already be (registry bases, and plan images pushed as they are
        now, by this run or an earlier one), so that they are mounted, not uploaded."""
        origins: dict[str, Origin] = {}
        hints: dict[str, list[Origin]] = {}
        for unit in self.build.units:
            if unit.base_ref and unit.base_record.exists():
                resolved = ResolvedBase.from_json(_load(unit.base_record))
                ref = reference.parse(unit.base_ref)
                origin = Origin(ref.registry, ref.path)
                for layer in resolved.layers:
                    origins[layer.digest] = origin
                    hints.setdefault(layer.digest, []).append(origin)
        options = self.build.options
        if options.cache_repo:
            from doit_oci.rules.layercache import CacheRepo

            repo = CacheRepo.parse(options.cache_repo)
            cache = Origin(repo.registry, repo.repository)
            for unit in self.build.units:
                for index in range(unit.layer_count):
                    with contextlib.suppress(OSError, ValueError, KeyError):
                        record = _load(unit.layer(index))
                        digest = record["descriptor"]["digest"]
                        hints.setdefault(digest, []).append(cache)
                        if record.get("cached"):
                            origins[digest] = cache
        for output in self.build.outputs:
            units = self.build.units_of(output)
            try:
                pushed = _load(self.push_record(output))["pushed"]
                current = self.image_descriptor(output).digest
            except (OSError, ValueError, KeyError):
                continue  # not pushed yet (a repository that may not hold them: no hint)
            for destination in destinations(options.hubs, output.name, output.tags):
                if any(pushed.get(ref) != current for ref in destination.references()):
                    continue
                origin = Origin(destination.registry, destination.repository)
                for unit in units:
                    manifest = self.layout.read(_load(unit.image_record)["manifest"]["digest"])
                    parsed = oci.Manifest.from_json(oci.parse_json_document(manifest, output.name))
                    for layer in parsed.layers:
                        hints.setdefault(layer.digest, []).append(origin)
        return origins, hints

    def check_clobber(self) -> None:
        """--no-clobber: every destination tag but latest must not exist yet (all named)."""
        options = self.build.options
        taken: list[str] = []
        for output in self.build.outputs:
            for destination in destinations(options.hubs, output.name, output.tags):
                client = self.clients.get(destination.registry)
                for tag in destination.tags:
                    if tag == "latest":
                        continue
                    if client.head_manifest(destination.repository, tag) is not None:
                        taken.append(f"{destination.name}:{tag}")
        if taken:
            raise UserError(
                f"--no-clobber: {', '.join(taken)} already exist{'s' if len(taken) == 1 else ''}",
                "the registries",
                "push with another tag, or without --no-clobber to overwrite",
            )

    # -- save -------------------------------------------------------------------------------

    def save_paths(self, output: Output) -> dict[str, Path]:
        """What --save writes for ``output``, by role, under out/release/docker: as the
        seed, ``<name>[-variant][-arch].tar.gz`` (docker load) per platform, the arch left
        out for linux/amd64; beyond the seed, the whole index of a multi-platform image as
        an OCI archive ``<name>[-variant].oci.tar``; and the seed's alias copy, without the
        variant, for the debug build that is also the default."""
        folder = self.build.out / "release" / "docker"
        units = self.build.units_of(output)
        paths: dict[str, Path] = {}
        for unit in units:
            suffix = "" if str(unit.platform) == "linux/amd64" else f"-{unit.platform.architecture}"
            paths[f"docker:{unit.key}"] = folder / f"{output.label}{suffix}.tar.gz"
            if output.also_default:
                paths[f"alias:{unit.key}"] = folder / f"{output.name}{suffix}.tar.gz"
        if len(units) > 1:
            paths["oci"] = folder / f"{output.label}.oci.tar"
            if output.also_default:
                paths["alias:oci"] = folder / f"{output.name}.oci.tar"
        return paths

    def save(self, output: Output) -> None:
        from doit_oci.rules.save import alias, write_docker_archive, write_oci_archive

        options = self.build.options
        if options.hubs:
            repo_tags = [
                ref
                for d in destinations(options.hubs, output.name, output.tags)
                for ref in d.references()
            ]
        else:
            repo_tags = list(output.ref_names)
        paths = self.save_paths(output)
        for unit in self.build.units_of(output):
            manifest = oci.Descriptor.from_json(_load(unit.image_record)["manifest"])
            target = paths[f"docker:{unit.key}"]
            write_docker_archive(self.layout, manifest, repo_tags, target)
            if f"alias:{unit.key}" in paths:
                alias(target, paths[f"alias:{unit.key}"])
        if "oci" in paths:
            write_oci_archive(
                self.layout, self.image_descriptor(output), output.ref_names[0], paths["oci"]
            )
            if "alias:oci" in paths:
                alias(paths["oci"], paths["alias:oci"])

    def push_index(self, output: Output) -> list[str]:
        """Make the multi-platform image from what one machine per platform pushed under
        ``<tag>-<arch>``: read those manifests and their configs (never a layer), put the
        index by digest, then under each tag. The references pushed, with digests."""
        from doit_oci.rules.build import platform_tag

        options = self.build.options
        done = []
        for destination in destinations(options.hubs, output.name, output.tags):
            client = self.clients.get(destination.registry)
            repository = destination.repository
            for tag in destination.tags:
                manifests = []
                for platform in [unit.platform for unit in self.build.units_of(output)]:
                    source = platform_tag(tag, platform)
                    data, media_type, digest = client.get_manifest(repository, source)
                    manifest = oci.Manifest.from_json(oci.parse_json_document(data, source))
                    with client.get_blob(repository, manifest.config.digest) as response:
                        config = oci.ImageConfig.from_json(
                            oci.parse_json_document(response.read(), f"config of {source}")
                        )
                    if config.platform != platform:
                        raise UserError(
                            f"{destination.name}:{source} is an image for {config.platform}",
                            "the registry",
                            f"push the {platform} image under {source}",
                        )
                    manifests.append(
                        oci.Descriptor(media_type, digest, len(data), platform=platform)
                    )
                index = oci.Index(tuple(manifests)).to_bytes()
                digest = client.put_manifest(repository, oci.sha256_digest(index), index, oci.INDEX)
                client.put_manifest(repository, tag, index, oci.INDEX)
                done.append(f"{destination.name}:{tag}@{digest}")
        return done

    def push_record(self, output: Output) -> Path:
        return self.build.state / "build" / "push" / f"{output.label}.json"

    def check_registry(self, registry: str) -> None:
        """Before the first push to ``registry``: it answers, and takes our credentials."""
        self.clients.get(registry).check_access()

    def push(self, output: Output) -> None:
        """Push ``output`` to every hub of the build, under its tags."""
        options = self.build.options
        descriptor = self.image_descriptor(output)
        targets = destinations(options.hubs, output.name, output.tags)
        uploaded = self.push_descriptor(descriptor, targets)
        pushed = {ref: descriptor.digest for d in targets for ref in d.references()}
        write_if_changed(
            self.push_record(output), _dump({"pushed": pushed, "uploaded_bytes": uploaded})
        )

    def push_descriptor(self, descriptor: oci.Descriptor, targets: Sequence[Destination]) -> int:
        """Push an image (manifest or index) of the store to ``targets``; bytes uploaded."""
        origins, hints = self.mount_hints()
        progress = Progress(progress_display(sys.stderr))
        pusher = Pusher(self.layout, self.clients.get, origins, hints, progress)
        uploaded = 0
        for destination in targets:
            report = pusher.push(descriptor, destination)
            progress.finish()
            print(report.line(), file=sys.stderr)
            uploaded += report.bytes_uploaded
        return uploaded

    def layout_uptodate(self) -> bool:
        try:
            named = self.named_descriptors()
        except Exception:  # whatever it is, the task reports it when it runs
            return False
        index = {d.ref_name: d.digest for d in self.layout.read_index().manifests}
        return all(index.get(name) == d.digest for name, d in named.items()) and all(
            self.layout.has_blob(d.digest) for d in named.values()
        )


def _changed_paths(path: Path, record: bytes) -> list[str]:
    """The image paths whose entry differs between the record on disk and ``record``."""
    try:
        old = {e["path"]: e for e in json.loads(path.read_bytes())["entries"]}
    except (OSError, ValueError, KeyError):
        return ["(no record yet)"]
    new = {e["path"]: e for e in json.loads(record)["entries"]}
    changed = []
    for name in sorted(old.keys() | new.keys()):
        if old.get(name) != new.get(name):
            entry = new.get(name) or old[name]
            what = entry.get("source") or "/" + name
            verb = "" if name in old and name in new else (" (new)" if name in new else " (gone)")
            changed.append(f"{what}{verb}")
    return changed


def _made_from(paths: Sequence[Path]) -> str:
    """A digest of the records a step read, kept in what it writes: when they change, what
    it wrote is out of date (the status task says so without doit's state)."""
    digest = hashlib.sha256()
    for path in paths:
        data = path.read_bytes()
        digest.update(f"{path.name}:{len(data)}:".encode())
        digest.update(data)
    return "sha256:" + digest.hexdigest()


def _same(paths: Sequence[Path], contents: Sequence[bytes]) -> bool:
    for path, content in zip(paths, contents, strict=True):
        try:
            if path.read_bytes() != content:
                return False
        except OSError:
            return False
    return True
