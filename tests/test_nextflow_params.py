"""Params: nextflow.config <-> nextflow_schema.json <-> the click CLI <-> the local engine <-> the test
profile agree (names, defaults, types, ranges); conf/modules.config publishes every process to its
stage folder and its ext.args feed every stage option from its param; the required profiles exist."""
from __future__ import annotations

import re

import click
import pytest

from nfconfig import (CONF, NEXTFLOW_CONFIG, REPO, TEST_PROFILE_ONLY, clean_default, json_type, mutate, params_block,
                      schema_properties, top_level_block, top_level_names, with_name_blocks)
from nfmodules import (INTERMEDIATE_H5AD, SPLIT_STEPS, carried_options, cli_command, engine_stages, ext_args_problems,
                       intermediate_h5ad_problems, parse_processes, stage_of, stage_outdir)

REQUIRED_PROFILES = {"test", "docker", "singularity", "apptainer", "gpu", "slurm", "awsbatch", "google", "k8s"}

# Params that exist only in the Nextflow layer (the local engine `fatescope run` has no use for
# them): publishing, containers, GPU requests, resource limits, executor settings, validation,
# and `simulate`, which the test profile sets (the local engine simulates whenever input is null).
NEXTFLOW_ONLY_PARAMS = {
    "simulate", "publish_dir_mode", "save_intermediates",
    "container_registry", "python_container", "python_gpu_container", "r_container",
    "use_gpu", "google_gpu_type", "gpu_queue", "gpu_cluster_options", "max_gpus",
    "max_cpus", "max_memory", "max_time",
    "queue", "cluster_options", "aws_region", "aws_cli_path", "google_project", "google_location",
    "k8s_namespace", "k8s_storage_claim", "k8s_storage_mount",
    "validate_params", "custom_config_base",
}
# conf/test.config params beyond fatescope.engine.profiles.TEST_PROFILE


# --- conf/modules.config -------------------------------------------------------------------

def test_every_process_is_published_to_its_stage_folder(processes, modules_config):
    for name, proc in processes.items():
        assert name in modules_config, f"conf/modules.config has no withName: '{name}' block"
        block = modules_config[name]
        if name in SPLIT_STEPS:  # a step of a split stage: its folder is the next step's input, not a result
            assert "publishDir" not in block, f"{name} is a split step of {stage_of(name)}; its stage's process publishes"
            continue
        outdir = stage_outdir(proc)
        assert re.search(rf"publishDir\s*=\s*\[path:\s*\{{\s*params\.outdir\s*\}}.*pattern:\s*'{re.escape(outdir)}'", block), \
            f"{name} must be published with pattern '{outdir}' into params.outdir"
        cmd = cli_command(stage_of(name))
        default_outdir = next(p.default for p in cmd.params if p.name == "outdir")
        assert outdir == default_outdir, f"{name} writes to {outdir}/, the CLI's (and local engine's) folder is {default_outdir}/"
    unknown = set(modules_config) - set(processes)
    assert not unknown, f"conf/modules.config configures unknown processes {unknown}"


# Stages whose cells.h5ad is an intermediate copy of the counts (published only with --save_intermediates);
# EMBED's is the run's final AnnData and stays in its folder.
LEAN_PUBLISHED = {"QC", "AMBIENT", "INTEGRATE", "AUCELL", "FATE_PROBS"}


def test_intermediate_h5ads_are_published_only_when_asked(processes, modules_config):
    lean = {name for name, proc in processes.items() if proc.emits.get("h5ad") == INTERMEDIATE_H5AD}
    assert lean == LEAN_PUBLISHED, f"processes emitting cells.h5ad beside their folder: {sorted(lean)}"
    assert processes["EMBED"].emits["h5ad"] == "embed/cells.h5ad"
    problems = [p for name in sorted(lean) for p in intermediate_h5ad_problems(processes[name], modules_config[name])]
    assert not problems, "\n".join(problems)
    # QC's AnnData is the final one when integration is skipped
    assert "ext.save_h5ad = params.save_intermediates || params.skip_integration" in modules_config["QC"]


@pytest.mark.parametrize("old, new, expected", [
    ("'mv qc/cells.h5ad cells.h5ad'", "''", "the script must end with"),
    ("    def keep_h5ad = task.ext.save_h5ad ?: false  // lean", "    def keep_h5ad = true  // lean", "the script must read"),
    ("${keep_h5ad ? 'cp cells.h5ad qc/cells.h5ad' : ''}", "", "the stub must copy"),
    ("ext.save_h5ad = params.save_intermediates || params.skip_integration", "ext.save_h5ad = true", "must set `ext.save_h5ad"),
])
def test_the_lean_publishing_check_fails_on_bad_modules(processes, modules_config, old, new, expected):
    qc = processes["QC"]
    mutated = parse_processes(qc.path, mutate(qc.path.read_text(), old, new, 1))[0] if old in qc.text else qc
    block = mutate(modules_config["QC"], old, new, 1) if old in modules_config["QC"] else modules_config["QC"]
    problems = intermediate_h5ad_problems(mutated, block)
    assert any(expected in p for p in problems), problems


def test_ext_args_options_exist_and_cover_every_stage_param(processes, modules_config):
    stages = engine_stages()
    problems = []
    for name in processes:
        stage = stages[stage_of(name)]
        problems += ext_args_problems(name, modules_config.get(name, ""), stage.prefix)
    assert not problems, "\n".join(problems)



# --- params: nextflow.config <-> schema <-> click <-> local engine <-> test profile --------

def test_config_params_and_schema_agree(config_params, schema):
    props = schema_properties(schema)
    assert set(config_params) == set(props), (
        f"in nextflow.config only: {sorted(set(config_params) - set(props))}; "
        f"in nextflow_schema.json only: {sorted(set(props) - set(config_params))}")
    for name, value in config_params.items():
        spec = props[name]
        assert spec.get("description"), f"schema: {name} has no description"
        assert spec.get("type"), f"schema: {name} has no type"
        if value is None:
            assert spec.get("default") is None, f"schema: {name} defaults to null in nextflow.config"
        else:
            assert "default" in spec and spec["default"] == value and type(spec["default"]) is type(value), \
                f"schema default of {name} is {spec.get('default')!r}, nextflow.config has {value!r}"
            assert spec["type"] == json_type(value), f"schema type of {name} is {spec['type']}, the default is {value!r}"
            if "enum" in spec:
                assert value in spec["enum"]


def test_schema_structure(schema):
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object"
    groups = schema["$defs"]
    assert [ref["$ref"] for ref in schema["allOf"]] == [f"#/$defs/{g}" for g in groups], "allOf must list every $defs group"
    for name, group in groups.items():
        assert group.get("title") and group.get("type") == "object" and group.get("properties"), f"$defs/{name}"
    inp = schema_properties(schema)["input"]
    assert inp["format"] == "file-path" and inp["schema"] == "assets/schema_input.json"
    assert (REPO / inp["schema"]).is_file()


def test_schema_is_valid_and_accepts_the_defaults(schema, config_params):
    """nextflow_schema.json is a valid draft 2020-12 schema; the defaults and the test profile's
    params satisfy it (types, ranges, enums, patterns) and bad values do not."""
    import jsonschema
    from fatescope.engine.profiles import TEST_PROFILE

    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    defaults = {k: v for k, v in config_params.items() if v is not None}
    # --outdir has no default (nf-core style): required on real data, the test profile sets it
    assert [e.message for e in validator.iter_errors(defaults)] == ["'outdir' is a required property"]
    defaults["outdir"] = "results"
    for instance in (defaults, {**defaults, **TEST_PROFILE, **TEST_PROFILE_ONLY}):
        problems = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(instance)]
        assert not problems, problems
    for bad in ({"publish_dir_mode": "cp"}, {"min_features": -1}, {"sim_ntc_frac": 1.5}, {"gene_join": "left"},
                {"max_memory": "lots"}, {"sim_n_cells": 2.5}, {"use_gpu": "yes"}):
        assert list(validator.iter_errors({**defaults, **bad})), f"schema accepts {bad}"


def test_stage_params_follow_the_naming_rule(config_params, processes, schema):
    """Every option of every stage (minus --outdir and inputs) is the param <prefix><dest> with
    the click default; the schema's type, range and choices are the click option's."""
    props = schema_properties(schema)
    stages = engine_stages()
    problems = []
    for name in processes:
        stage = stages.get(stage_of(name))
        assert stage is not None, f"stage {stage_of(name)} is not in fatescope.engine.stages.STAGES"
        for opt in stage.command.params:
            if not isinstance(opt, click.Option) or opt.name not in carried_options(name):
                continue
            param = stage.prefix + opt.name
            if param not in config_params:
                problems.append(f"--{opt.name} of `fatescope {stage.name}` has no param {param} in nextflow.config")
                continue
            default = clean_default(opt.default)
            if config_params[param] != default or type(config_params[param]) is not type(default):
                problems.append(f"params.{param} = {config_params[param]!r}; `fatescope {stage.name} --{opt.name}` "
                                f"defaults to {default!r}")
            spec, t = props.get(param, {}), opt.type
            want = ("integer" if isinstance(t, click.IntRange) or t is click.INT else
                    "number" if isinstance(t, click.FloatRange) or t is click.FLOAT else
                    "boolean" if isinstance(t, click.types.BoolParamType) else "string")  # flags too
            if spec.get("type") != want:
                problems.append(f"schema type of {param} is {spec.get('type')}, click says {want}")
            for key, attr in (("minimum", "min"), ("maximum", "max")):
                if getattr(t, attr, None) is not None and spec.get(key) != getattr(t, attr):
                    problems.append(f"schema {key} of {param} is {spec.get(key)}, click's is {getattr(t, attr)}")
            if isinstance(t, click.Choice) and spec.get("enum") != list(t.choices):
                problems.append(f"schema enum of {param} is {spec.get('enum')}, click's choices are {list(t.choices)}")
    assert not problems, "\n".join(problems)


def test_params_agree_with_the_local_engine(config_params):
    """Both engines read the same params: the local engine's defaults (fatescope.engine.stages)
    are nextflow.config's, and nextflow.config adds only the Nextflow-only ones."""
    from fatescope.engine.stages import default_params

    local = default_params()
    assert set(config_params) == set(local) | NEXTFLOW_ONLY_PARAMS, (
        f"only in nextflow.config (add to NEXTFLOW_ONLY_PARAMS if Nextflow-only): "
        f"{sorted(set(config_params) - set(local) - NEXTFLOW_ONLY_PARAMS)}; "
        f"only in the local engine: {sorted(set(local) - set(config_params))}")
    assert not NEXTFLOW_ONLY_PARAMS & set(local), "a Nextflow-only param is also a local-engine param"
    for name, value in local.items():
        assert config_params[name] == value, f"params.{name}: nextflow.config {config_params[name]!r}, local engine {value!r}"


def test_every_module_is_a_local_engine_stage(processes):
    stages = engine_stages()
    nextflow_stages = {stage_of(n) for n in processes}
    assert nextflow_stages == set(stages), (
        f"stages only in Nextflow: {sorted(nextflow_stages - set(stages))}; "
        f"only in the local engine: {sorted(set(stages) - nextflow_stages)}")


def test_test_profile_matches_the_local_engine():
    from fatescope.engine.profiles import TEST_PROFILE

    test_params = params_block(CONF / "test.config")
    assert test_params == {**TEST_PROFILE, **TEST_PROFILE_ONLY}, (
        f"conf/test.config params {test_params} != TEST_PROFILE {TEST_PROFILE} + {TEST_PROFILE_ONLY}")


def test_required_profiles_exist():
    body = top_level_block(NEXTFLOW_CONFIG.read_text(), "profiles")
    assert body is not None, "nextflow.config has no profiles block"
    profiles = set(top_level_names(body))
    assert REQUIRED_PROFILES <= profiles, f"missing profiles: {REQUIRED_PROFILES - profiles}"
    for target in re.findall(r"includeConfig\s+'([^']+)'", NEXTFLOW_CONFIG.read_text()):
        assert (REPO / target).is_file(), f"includeConfig {target}: no such file"
    cfg = NEXTFLOW_CONFIG.read_text()
    assert "includeConfig 'conf/base.config'" in cfg and "includeConfig 'conf/modules.config'" in cfg
    assert re.search(r"id\s+'nf-schema@\d+\.\d+\.\d+'", cfg), "nf-schema must be pinned to an exact version"
    manifest = top_level_block(cfg, "manifest")
    for key, value in (("name", "fatescope"), ("mainScript", "main.nf"), ("nextflowVersion", ">=24.10")):
        assert re.search(rf"{key}\s*=\s*'{re.escape(value)}'", manifest), f"manifest.{key} must be {value!r}"
    for report in ("timeline", "report", "trace", "dag"):
        block = top_level_block(cfg, report)
        assert block and "${params.outdir}/pipeline_info/" in block and re.search(r"enabled\s*=\s*params\.outdir\s*!=\s*null", block)


def test_params_block_parser_rejects_non_literals(tmp_path):
    cfg = tmp_path / "x.config"
    cfg.write_text("params {\n  a = 1\n  b = \"${params.a}\"\n}\n")
    with pytest.raises(AssertionError, match="must be a literal"):
        params_block(cfg)
    cfg.write_text("params {\n  a = 1 // one\n  b = 'x' /* two */\n  c = null\n  d = 2.5\n}\n")
    assert params_block(cfg) == {"a": 1, "b": "x", "c": None, "d": 2.5}



# --- negative tests -----------------------------------------------------------------------

@pytest.mark.parametrize("old, new, expected", [
    ("'min-cells'   : params.min_cells", "'min-cellz'   : params.min_cells", "--min-cellz is not an option"),
    ("'min-cells'   : params.min_cells", "'min-cells'   : params.min_cell", "naming rule says params.min_cells"),
    ("'gene-join'   : params.gene_join,", "", "--gene-join is not passed"),
])
def test_ext_args_check_fails_on_bad_options(old, new, expected):
    block = with_name_blocks(mutate((CONF / "modules.config").read_text(), old, new, 1))["QC"]
    problems = ext_args_problems("QC", block, "")
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize("old, new, expected", [
    ("params.diag_permutation ? '--permutation' : '--no-permutation',", "", "--permutation is not passed"),
    ("params.diag_permutation ? '--permutation'", "params.diag_permutations ? '--permutation'",
     "naming rule says params.diag_permutation"),
    ("'seed'            : params.diag_seed,", "'seed': params.diag_seed, 'permutation': params.diag_permutation,",
     "--permutation is a flag"),
])
def test_ext_args_check_handles_boolean_flags(old, new, expected):
    block = with_name_blocks(mutate((CONF / "modules.config").read_text(), old, new, 1))["DIAGNOSTICS"]
    problems = ext_args_problems("DIAGNOSTICS", block, "diag_")
    assert any(expected in p for p in problems), problems
