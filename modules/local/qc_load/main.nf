/*
 * QC_LOAD: `fatescope qc --load-only` -- one sample: load its counts, attach its guide calls and
 * fate probabilities, drop the cells with fewer than --min-features genes (no gene join can give
 * them more, so QC's filters keep the same cells); qc_samples/<sample>.h5ad for QC's merge.
 *
 * One task per samplesheet row (tag: the sample), so the samples load in parallel and each input
 * file is staged once, here. Inputs: [meta, counts, guides or [], fate_probs or []] (main.nf, from
 * nf-schema's samplesheetToList); the guide map ([] when there is none); VALIDATE's
 * samplesheet.valid.csv, which orders the loads after a passing validation of the whole sheet.
 */

process QC_LOAD {
    tag "${meta.id}"
    label 'process_low'

    input:
    tuple val(meta), path(counts, stageAs: 'inputs/counts/*'), path(guides, stageAs: 'inputs/guides/*'), path(fate_probs, stageAs: 'inputs/fate_probs/*')
    path guide_map
    path validated, stageAs: 'validate/samplesheet.valid.csv'

    output:
    tuple val(meta), path("qc_samples/${meta.id}.h5ad"), emit: h5ad
    path "qc_samples", emit: outdir
    path "qc_samples/versions.yml", emit: versions

    script:
    def args = task.ext.args ?: ''
    def guide_map_arg = guide_map ? "--guide-map ${guide_map}" : ''
    def row = [sample: meta.id, counts: counts, batch: meta.batch, day: meta.day, replicate: meta.replicate,
               guides: guides ?: '', fate_probs: fate_probs ?: '']
    def csvCell = { value -> value.contains(',') || value.contains('"') ? '"' + value.replace('"', '""') + '"' : value }
    def lines = [row.keySet().join(','), row.values().collect { value -> csvCell.call(value.toString()) }.join(',')]
    def quoted = lines.collect { line -> "'" + line.replace("'", "'\\''") + "'" }.join(' ')
    """
    printf '%s\\n' ${quoted} > samplesheet.csv
    fatescope qc --input samplesheet.csv --load-only --outdir qc_samples ${guide_map_arg} ${args}
    """

    stub:
    """
    mkdir -p qc_samples
    touch qc_samples/${meta.id}.h5ad qc_samples/params.yaml
    echo 'fatescope qc --input samplesheet.csv --load-only --outdir qc_samples (stub)' > qc_samples/command.txt
    printf '"FATESCOPE:QC_LOAD":\\n  fatescope: stub\\n' > qc_samples/versions.yml
    """
}
