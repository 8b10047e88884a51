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

include { SIMULATE } from './modules/local/simulate'
include { VALIDATE } from './modules/local/validate'
include { QC       } from './modules/local/qc'
include { FATE_FIT      } from './modules/local/fate_fit'
include { MASH          } from './modules/local/mash'
include { AGGREGATE     } from './modules/local/aggregate'
include { RANK          } from './modules/local/rank'
include { EVAL_RECOVERY } from './modules/local/eval_recovery'
include { DIAGNOSTICS   } from './modules/local/diagnostics'

workflow {
    if (params.validate_params) {
        validateParameters()
    }
    log.info(paramsSummaryLog(workflow))

    ch_versions = channel.empty()
    ch_truth = channel.empty()

    //
    // Samples: [meta (id, batch, day, replicate), counts, guides or [], fate_probs or []]
    //
    if (params.input) {
        ch_rows = channel.fromList(samplesheetToList(params.input, "${projectDir}/assets/schema_input.json"))
        ch_guide_map = params.guide_map ? channel.value(file(params.guide_map, checkIfExists: true)) : channel.value([])
    }
    else if (params.simulate) {
        SIMULATE()
        ch_versions = ch_versions.mix(SIMULATE.out.versions)
        ch_rows = SIMULATE.out.samplesheet
            .combine(SIMULATE.out.outdir)
            .flatMap { sheet, simdir -> simulatedRows(sheet, simdir) }
        ch_guide_map = params.guide_map ? channel.value(file(params.guide_map, checkIfExists: true)) : SIMULATE.out.guide_map
        ch_truth = SIMULATE.out.outdir.map { simdir -> simdir.resolve('truth/sim_recovery.csv') }
    }
    else {
        error("No samplesheet: give --input samplesheet.csv (see assets/schema_input.json), or run -profile test to simulate one")
    }

    // All samples in one [sheet, files] item, sorted by sample so that -resume sees the same inputs
    ch_samples = ch_rows
        .toSortedList { a, b -> a[0].id <=> b[0].id }
        .map { rows -> stagedSamplesheet(rows) }

    //
    // Stages
    //
    VALIDATE(ch_samples)
    ch_versions = ch_versions.mix(VALIDATE.out.versions)

    QC(ch_samples, ch_guide_map, VALIDATE.out.samplesheet)
    ch_versions = ch_versions.mix(QC.out.versions)

    // Fate effects -> mash shrinkage -> guide aggregation and hit ranking
    FATE_FIT(QC.out.h5ad, ch_guide_map)
    ch_versions = ch_versions.mix(FATE_FIT.out.versions)

    MASH(FATE_FIT.out.gene_daywise, FATE_FIT.out.guide_daywise)
    ch_versions = ch_versions.mix(MASH.out.versions)

    AGGREGATE(MASH.out.guide_conservative, MASH.out.guide_enriched)
    ch_versions = ch_versions.mix(AGGREGATE.out.versions)

    RANK(MASH.out.gene_conservative, MASH.out.gene_enriched)
    ch_versions = ch_versions.mix(RANK.out.versions)

    // Recovery of the planted effects: simulated data only (ch_truth is empty otherwise)
    EVAL_RECOVERY(FATE_FIT.out.theta_summary, ch_truth, RANK.out.hits)
    ch_versions = ch_versions.mix(EVAL_RECOVERY.out.versions)

    DIAGNOSTICS(QC.out.h5ad, FATE_FIT.out.model, FATE_FIT.out.theta_summary, ch_guide_map)
    ch_versions = ch_versions.mix(DIAGNOSTICS.out.versions)

    //
    // pipeline_info: versions of every stage, and the params of this run
    //
    ch_versions
        .collectFile(name: 'versions.yml', storeDir: "${params.outdir}/pipeline_info", sort: true, newLine: true)

    channel.of(paramsYaml(params))
        .collectFile(name: 'params.yaml', storeDir: "${params.outdir}/pipeline_info")
}

/*
 * The samplesheet of `rows` as [sheet, files]: `files` lists every file once (counts, then
 * guides and fate_probs when given, sample by sample) and `sheet` is the CSV as a list of rows,
 * header first, where a file cell is that file's index in `files`. The process stages `files`
 * and writes the CSV with the staged names (modules/local/validate).
 */
def stagedSamplesheet(List rows) {
    def header = ['sample', 'counts', 'batch', 'day', 'replicate', 'guides', 'fate_probs']
    def perSample = rows.collect { row ->
        [meta: row[0], files: [counts: row[1], guides: row[2], fate_probs: row[3]].findAll { entry -> entry.value }]
    }
    def nFiles = perSample.collect { sample -> sample.files.size() }
    def sheet = [header] + perSample.withIndex().collect { sample, i ->
        def offset = i == 0 ? 0 : nFiles.take(i).sum()
        def columns = sample.files.keySet().toList()
        def values = [sample: sample.meta.id, batch: sample.meta.batch, day: sample.meta.day, replicate: sample.meta.replicate]
        header.collect { col -> col in columns ? offset + columns.indexOf(col) : (values[col] ?: '') }
    }
    def files = perSample.collectMany { sample -> sample.files.values().toList() }
    return [sheet, files]
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
