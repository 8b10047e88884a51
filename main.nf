#!/usr/bin/env nextflow
/*
 * fatescope: time-course CRISPRi Perturb-seq -> ranked knockdown effects on cell fate.
 *
 *   nextflow run main.nf -profile <docker|singularity|apptainer>[,slurm|awsbatch|google|k8s][,gpu] \
 *       --input samplesheet.csv --outdir results
 *   nextflow run main.nf -profile test,docker            (simulated data, no --input)
 *
 * One process per stage, each calling `fatescope <stage>` (modules/local/<stage>/main.nf);
 * params, resources and publishing in nextflow.config and conf/. Docs: docs/nextflow.md.
 * Adding a stage: a module folder, an include below, its call in the workflow, and a withName
 * block in conf/modules.config.
 */

include { samplesheetToList; validateParameters; paramsSummaryLog } from 'plugin/nf-schema'

include { CHECK_IMAGES } from './subworkflows/local/check_images'

include { SIMULATE } from './modules/local/simulate'
include { VALIDATE } from './modules/local/validate'
include { QC_LOAD  } from './modules/local/qc_load'
include { QC       } from './modules/local/qc'
include { AMBIENT       } from './modules/local/ambient'
include { INTEGRATE     } from './modules/local/integrate'
include { EMBED         } from './modules/local/embed'
include { GRN           } from './modules/local/grn'
include { MODULES       } from './modules/local/modules'
include { PRUNE         } from './modules/local/prune'
include { AUCELL_CHUNK  } from './modules/local/aucell_chunk'
include { AUCELL        } from './modules/local/aucell'
include { FATE_PROBS    } from './modules/local/fate_probs'
include { FATE_FIT      } from './modules/local/fate_fit'
include { MASH_FIT      } from './modules/local/mash_fit'
include { MASH_CHUNK    } from './modules/local/mash_chunk'
include { MASH          } from './modules/local/mash'
include { AGGREGATE     } from './modules/local/aggregate'
include { RANK          } from './modules/local/rank'
include { EVAL_RECOVERY } from './modules/local/eval_recovery'
include { DIAGNOSTICS   } from './modules/local/diagnostics'
include { REPORT        } from './modules/local/report'

workflow {
    if (!params.outdir) {
        error("--outdir is required: the folder (or s3:// / gs:// URL) the results are published to (-profile test sets results)")
    }
    if (params.validate_params) {
        validateParameters()
    }
    log.info(paramsSummaryLog(workflow))
    if (!params.skip_fate && !params.mash_mode.toString().tokenize(',').collect { mode -> mode.trim() }.contains('conservative')) {
        error("--mash_mode ${params.mash_mode}: the pipeline ranks hits on the conservative mode; give 'conservative' or 'conservative,enriched'")
    }

    // Fate probabilities are computed (FATE_PROBS, on EMBED's graph) when asked, or when a sample brings none
    def sampleRows = params.input ? samplesheetToList(params.input, "${projectDir}/assets/schema_input.json") : []
    def samplesLackFateProbs = params.input ? sampleRows.any { row -> !row[3] } : !params.sim_fate_probs
    def computeFateProbs = !params.skip_fate && (params.compute_fate_probs == 'always'
        || (params.compute_fate_probs == 'auto' && samplesLackFateProbs))
    if (computeFateProbs && params.skip_integration) {
        error("the fate branch needs fate probabilities: some sample has no fate_probs file (or --compute_fate_probs always), so FATE_PROBS computes them on EMBED's kNN graph; drop --skip_integration, give every sample a fate_probs file, or --skip_fate true")
    }
    if (!params.skip_fate && params.compute_fate_probs == 'never' && samplesLackFateProbs && params.fate_missing_fate_probs != 'drop') {
        error("--compute_fate_probs never: some sample of the samplesheet has no fate_probs file, so the fate branch would have no fate probabilities for its cells; give every sample one, use --compute_fate_probs auto, --fate_missing_fate_probs drop (fit on the other samples' cells), or --skip_fate true")
    }

    // Every container image of the run carries this pipeline's fatescope version: checked before any stage runs
    CHECK_IMAGES(channel.fromList(runImages()))
    ch_images_ok = CHECK_IMAGES.out.ready.map { _images -> 'images checked' }

    ch_versions = channel.empty()
    ch_truth = channel.empty()
    ch_simdir = null
    ch_results = channel.empty()  // every stage's output folder, for the report

    //
    // Samples: [meta (id, batch, day, replicate), counts, guides or [], fate_probs or []]
    //
    if (params.input) {
        ch_rows = channel.fromList(sampleRows)
        ch_guide_map = params.guide_map ? channel.value(file(params.guide_map, checkIfExists: true)) : channel.value([])
    }
    else if (params.simulate) {
        SIMULATE(ch_images_ok)
        ch_versions = ch_versions.mix(SIMULATE.out.versions)
        ch_rows = SIMULATE.out.samplesheet
            .combine(SIMULATE.out.outdir)
            .flatMap { sheet, simdir -> simulatedRows(sheet, simdir) }
        ch_guide_map = params.guide_map ? channel.value(file(params.guide_map, checkIfExists: true)) : SIMULATE.out.guide_map
        ch_truth = SIMULATE.out.outdir.map { simdir -> simdir.resolve('truth/sim_recovery.csv') }
        ch_simdir = SIMULATE.out.outdir
        ch_results = ch_results.mix(SIMULATE.out.outdir)
    }
    else {
        error("No samplesheet: give --input samplesheet.csv (see assets/schema_input.json), or run -profile test to simulate one")
    }

    // VALIDATE checks the whole samplesheet (files as URIs, none staged), once the images are checked;
    // rows sorted by sample so that -resume sees the same inputs
    ch_sheet = ch_rows
        .toSortedList { a, b -> a[0].id <=> b[0].id }
        .map { rows -> [samplesheetOfUris(rows)] }
        .combine(ch_images_ok)
        .map { sheet, _checked -> sheet }

    //
    // Stages
    //
    VALIDATE(ch_sheet)
    ch_versions = ch_versions.mix(VALIDATE.out.versions)
    ch_results = ch_results.mix(VALIDATE.out.outdir)

    // QC in two steps: each sample loaded in its own task (its files staged there, once), then one
    // merge task joins and filters them in sample order -- the same qc/ as one task over the whole sheet
    // (the guide map and the validation gate as value channels: every sample's task reads them; the
    // guide map is one in both branches, SIMULATE's inputs being value channels)
    QC_LOAD(ch_rows, ch_guide_map, VALIDATE.out.samplesheet.first())
    ch_versions = ch_versions.mix(QC_LOAD.out.versions.first())  // the same tools in every sample's task

    QC(QC_LOAD.out.h5ad.toSortedList { a, b -> a[0].id <=> b[0].id }.map { loaded -> loaded.collect { sample -> sample[1] } },
       ch_guide_map)
    ch_versions = ch_versions.mix(QC.out.versions)
    ch_results = ch_results.mix(QC.out.outdir)

    //
    // Cells: [ambient] -> integrate -> embed
    //
    ch_embedded = channel.value([])
    ch_cell_truth = channel.value([])
    if (!params.skip_integration) {
        ch_cells = QC.out.h5ad
        if (params.run_ambient) {
            AMBIENT(QC.out.h5ad, optionalFile(params.ambient_raw))
            ch_versions = ch_versions.mix(AMBIENT.out.versions)
            ch_results = ch_results.mix(AMBIENT.out.outdir)
            ch_cells = AMBIENT.out.h5ad
        }
        INTEGRATE(ch_cells, optionalFile(params.integrate_projection))
        ch_versions = ch_versions.mix(INTEGRATE.out.versions)
        ch_results = ch_results.mix(INTEGRATE.out.outdir)

        ch_labels = params.embed_labels || ch_simdir == null
            ? optionalFile(params.embed_labels)
            : ch_simdir.map { simdir -> simdir.resolve('truth/cells.parquet') }
        EMBED(INTEGRATE.out.h5ad, ch_labels)
        ch_versions = ch_versions.mix(EMBED.out.versions)
        ch_results = ch_results.mix(EMBED.out.outdir)

        ch_embedded = EMBED.out.h5ad
        ch_cell_truth = ch_simdir == null ? channel.value([]) : ch_simdir.map { simdir -> simdir.resolve('truth/cells.parquet') }
    }

    //
    // Regulons: grn -> modules -> prune -> aucell. Reference files: the params when set, else the
    // simulation's own (-profile test), else the bundled human TF list.
    //
    ch_regulons = channel.value([])
    ch_regulon_truth = channel.value([])
    if (!params.skip_regulons) {
        ch_tf_list = params.tf_list in ['human', 'mouse']
            ? channel.value(bundledTfList(params.tf_list))
            : simulatedOr(params.tf_list, ch_simdir, 'resources/tf_list.txt', bundledTfList('human'))
        GRN(QC.out.h5ad, ch_tf_list)
        ch_versions = ch_versions.mix(GRN.out.versions)
        ch_results = ch_results.mix(GRN.out.outdir)

        MODULES(GRN.out.adjacency)
        ch_versions = ch_versions.mix(MODULES.out.versions)
        ch_results = ch_results.mix(MODULES.out.outdir)

        ch_ranking_dbs = params.ranking_dbs
            ? channel.value(params.ranking_dbs.toString().tokenize(', ').collect { db -> file(db, checkIfExists: true) })
            : simulatedOr(null, ch_simdir, 'resources/sim.genes_vs_motifs.rankings.feather', null)
        ch_annotations = simulatedOr(params.motif_annotations, ch_simdir, 'resources/motifs.tbl', null)
        PRUNE(MODULES.out.modules, ch_ranking_dbs, ch_annotations)
        ch_versions = ch_versions.mix(PRUNE.out.versions)
        ch_results = ch_results.mix(PRUNE.out.outdir)

        // params.aucell_chunk_size: one AUCELL_CHUNK task per chunk of the cells QC kept, then AUCELL gathers
        ch_aucell_chunks = channel.value([])
        if (params.aucell_chunk_size) {
            AUCELL_CHUNK(QC.out.h5ad.first(), PRUNE.out.regulons.first(),
                         QC.out.per_sample.flatMap { table -> chunkIndices(cellsKept(table), params.aucell_chunk_size) })
            ch_versions = ch_versions.mix(AUCELL_CHUNK.out.versions.first())
            ch_aucell_chunks = AUCELL_CHUNK.out.outdir.collect(sort: true)
        }
        AUCELL(QC.out.h5ad, PRUNE.out.regulons, ch_aucell_chunks)
        ch_versions = ch_versions.mix(AUCELL.out.versions)
        ch_results = ch_results.mix(AUCELL.out.outdir)

        ch_regulons = PRUNE.out.regulons
        ch_regulon_truth = ch_simdir == null ? channel.value([]) : ch_simdir.map { simdir -> simdir.resolve('truth/regulons_truth.csv') }
    }

    //
    // [Fate probabilities] -> fate effects -> mash shrinkage -> guide aggregation and hit ranking -> diagnostics
    //
    if (!params.skip_fate) {
        // Fate probabilities: the samples' own, or computed on EMBED's graph when a sample has none
        // (params.compute_fate_probs: auto, always, never)
        ch_fate_probs = channel.value([])
        if (computeFateProbs) {
            // simulated: the truth's cell_type annotation names the terminal states (-profile test)
            FATE_PROBS(EMBED.out.h5ad, params.fate_probs_labels ? optionalFile(params.fate_probs_labels) : ch_cell_truth)
            ch_versions = ch_versions.mix(FATE_PROBS.out.versions)
            ch_results = ch_results.mix(FATE_PROBS.out.outdir)
            ch_fate_probs = FATE_PROBS.out.table
        }

        FATE_FIT(QC.out.h5ad, ch_guide_map, ch_fate_probs)
        ch_versions = ch_versions.mix(FATE_FIT.out.versions)
        ch_results = ch_results.mix(FATE_FIT.out.outdir)

        // params.mash_effect_chunk_size (python engine, no saved fit): MASH_FIT fits, one MASH_CHUNK task per
        // table, mode and chunk of effects computes posteriors, MASH gathers
        ch_mash_chunks = channel.value([])
        if (params.mash_effect_chunk_size && params.mash_engine == 'python' && !params.mash_fixg_fit) {
            MASH_FIT(FATE_FIT.out.gene_daywise, FATE_FIT.out.guide_daywise)
            ch_versions = ch_versions.mix(MASH_FIT.out.versions)
            MASH_CHUNK(FATE_FIT.out.gene_daywise.first(), FATE_FIT.out.guide_daywise.first(), MASH_FIT.out.outdir.first(),
                       MASH_FIT.out.plan.flatMap { plan -> plan.splitCsv(header: true).collect { row -> [row.kind, row.mode, row.chunk as int] } })
            ch_versions = ch_versions.mix(MASH_CHUNK.out.versions.first())
            ch_mash_chunks = MASH_FIT.out.outdir.mix(MASH_CHUNK.out.outdir).collect(sort: true)
        }
        MASH(FATE_FIT.out.gene_daywise, FATE_FIT.out.guide_daywise, optionalFile(params.mash_fixg_fit), ch_mash_chunks)
        ch_versions = ch_versions.mix(MASH.out.versions)
        ch_results = ch_results.mix(MASH.out.outdir)

        // the enriched tables exist only when params.mash_mode includes 'enriched'
        AGGREGATE(MASH.out.guide_conservative.mix(MASH.out.guide_enriched).collect())
        ch_versions = ch_versions.mix(AGGREGATE.out.versions)
        ch_results = ch_results.mix(AGGREGATE.out.outdir)

        RANK(MASH.out.gene_conservative, MASH.out.gene_enriched.ifEmpty([]))
        ch_versions = ch_versions.mix(RANK.out.versions)
        ch_results = ch_results.mix(RANK.out.outdir)

        // Recovery of the planted effects, regulons and fates: simulated data only (ch_truth is empty otherwise)
        EVAL_RECOVERY(FATE_FIT.out.theta_summary, ch_truth, RANK.out.hits, ch_regulons, ch_regulon_truth, ch_embedded, ch_cell_truth)
        ch_versions = ch_versions.mix(EVAL_RECOVERY.out.versions)
        ch_results = ch_results.mix(EVAL_RECOVERY.out.outdir)

        if (!params.skip_diagnostics) {
            DIAGNOSTICS(QC.out.h5ad, FATE_FIT.out.model, FATE_FIT.out.theta_summary, ch_guide_map, ch_fate_probs,
                        optionalFile(params.diag_known_regulators))
            ch_versions = ch_versions.mix(DIAGNOSTICS.out.versions)
            ch_results = ch_results.mix(DIAGNOSTICS.out.outdir)
        }
    }

    if (!params.skip_report) {
        REPORT(ch_results.collect())
        ch_versions = ch_versions.mix(REPORT.out.versions)
    }

    //
    // pipeline_info: versions of every stage, and the params of this run
    //
    ch_versions
        .collectFile(name: 'versions.yml', storeDir: "${params.outdir}/pipeline_info", sort: true, newLine: true)

    channel.of(paramsYaml(params))
        .collectFile(name: 'params.yaml', storeDir: "${params.outdir}/pipeline_info")
}

/*
 * The container images this run uses (registry/name:tag as conf/base.config and conf/modules.config
 * build them): the CPU image always; the CUDA image when params.use_gpu and a GPU stage runs; the R
 * image when mash runs with --mash_engine r. [''] without a container engine: the `fatescope` on PATH.
 */
def runImages() {
    if (!workflow.containerEngine) {
        return ['']
    }
    def images = [params.python_container]
    if (params.use_gpu && !(params.skip_integration && params.skip_regulons && params.skip_fate)) {
        images << params.python_gpu_container
    }
    if (!params.skip_fate && params.mash_engine == 'r') {
        images << params.r_container
    }
    return images.collect { name -> [params.container_registry, name].findAll { part -> part }.join('/') }.unique()
}

/*
 * A file param as a value channel: the file, or [] (an absent optional input) when the param is unset.
 */
def optionalFile(value) {
    return channel.value(value ? file(value.toString(), checkIfExists: true) : [])
}

/*
 * A reference file: the param `value` when set; else `relative` inside the simulation's folder
 * `simdir` (a channel; null when the run does not simulate); else `fallback` (a file, or null:
 * the param is required).
 */
def simulatedOr(value, simdir, String relative, fallback) {
    if (value) {
        return channel.value(file(value.toString(), checkIfExists: true))
    }
    if (simdir != null) {
        return simdir.map { dir -> dir.resolve(relative) }
    }
    if (fallback) {
        return channel.value(fallback)
    }
    error("the regulon stages need --ranking_dbs and --motif_annotations (cisTarget files), or --skip_regulons true")
}

/*
 * The bundled TF list of a species ('human': Lambert et al. 2018; 'mouse': MGI).
 */
def bundledTfList(String species) {
    def bundled = [human: 'hs_lambert2018.txt', mouse: 'mm_mgi_tfs.txt']
    return file("${projectDir}/assets/tf_lists/${bundled[species]}", checkIfExists: true)
}

/*
 * The samplesheet of `rows` ([meta, counts, guides or [], fate_probs or []]) as a list of rows, header
 * first, with each file as its URI (an s3:// or gs:// file keeps its scheme): VALIDATE checks the sheet
 * without staging a file.
 */
def samplesheetOfUris(List rows) {
    def header = ['sample', 'counts', 'batch', 'day', 'replicate', 'guides', 'fate_probs']
    return [header] + rows.collect { row ->
        def meta = row[0]
        [meta.id, row[1].toUriString(), meta.batch, meta.day, meta.replicate] + row[2..3].collect { f -> f ? f.toUriString() : '' }
    }
}

/*
 * The cells QC kept: the sum of cells_after over qc_per_sample.csv.
 */
def cellsKept(table) {
    return table.splitCsv(header: true).sum { row -> row.cells_after as long } ?: 0
}

/*
 * The indices 0..n-1 of the chunks of `size` items that cover `total` items.
 */
def chunkIndices(total, size) {
    def step = size as long
    return (0..<(((total as long) + step - 1).intdiv(step) as int)).toList()
}

/*
 * Rows of SIMULATE's samplesheet.csv, with each file path re-rooted on the `simdir` Nextflow
 * emitted: the CLI writes absolute paths inside the task's scratch folder, which another task
 * (or a cloud executor) cannot see; the part after '/simulate/' is the file within simdir.
 */
def simulatedRows(sheet, simdir) {
    return sheet.splitCsv(header: true).collect { row ->
        [
            [id: row.sample, batch: row.batch, day: row.day, replicate: row.replicate],
            relocated(row.counts, simdir),
            relocated(row.guides, simdir),
            relocated(row.fate_probs, simdir),
        ]
    }
}

def relocated(value, simdir) {
    if (!value) {
        return []
    }
    def text = value.toString()
    def at = text.lastIndexOf('/simulate/')
    return at >= 0 ? simdir.resolve(text.substring(at + '/simulate/'.length())) : file(text)
}

/*
 * The run's params as YAML (scalars written as JSON, which YAML reads; decimals in plain
 * notation), sorted by name.
 */
def paramsYaml(Map values) {
    def lines = values.keySet().toList().sort().collect { key ->
        def value = values[key]
        def scalar = value == null || value instanceof Number || value instanceof Boolean ? value : value.toString()
        if (scalar instanceof Float || scalar instanceof Double || scalar instanceof BigDecimal) {
            // plain notation: YAML reads 1E-10 as a string, 0.0000000001 as a number
            return "${key}: ${new BigDecimal(scalar.toString()).toPlainString()}"
        }
        "${key}: ${groovy.json.JsonOutput.toJson(scalar)}"
    }
    return lines.join('\n') + '\n'
}
