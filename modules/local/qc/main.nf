/*
 * QC: `fatescope qc` -- load every sample, attach guide calls and fate probabilities,
 * concatenate, filter cells and genes; qc/cells.h5ad and qc/qc_per_sample.csv.
 *
 * Inputs: the same [sheet, files] as VALIDATE (staged the same way, see modules/local/validate),
 * the guide map ([] when there is none) and VALIDATE's samplesheet.valid.csv, which orders QC
 * after a passing validation (its absolute paths point into VALIDATE's task folder, which a
 * cloud executor does not share, so QC writes its own samplesheet of staged files).
 */

process QC {
    tag "${sheet.size() - 1} samples"
    label 'process_medium'

    input:
    tuple val(sheet), path(files, stageAs: 'inputs/??/*', arity: '1..*')
    path guide_map
    path validated, stageAs: 'validate/samplesheet.valid.csv'

    output:
    path "qc", emit: outdir
    path "cells.h5ad", emit: h5ad  // in qc/ too only with task.ext.save_h5ad (lean publishing)
    path "qc/qc_per_sample.csv", emit: per_sample
    path "qc/versions.yml", emit: versions

    script:
    def args = task.ext.args ?: ''
    def keep_h5ad = task.ext.save_h5ad ?: false  // lean publishing: conf/modules.config
    def guide_map_arg = guide_map ? "--guide-map ${guide_map}" : ''
    def staged = files instanceof List ? files : [files]
    def csvCell = { value -> value.contains(',') || value.contains('"') ? '"' + value.replace('"', '""') + '"' : value }
    def lines = sheet.collect { row -> row.collect { cell -> csvCell.call(cell instanceof Integer ? staged[cell].toString() : cell.toString()) }.join(',') }
    def quoted = lines.collect { line -> "'" + line.replace("'", "'\\''") + "'" }.join(' ')
    """
    printf '%s\\n' ${quoted} > samplesheet.csv
    fatescope qc --input samplesheet.csv --outdir qc ${guide_map_arg} ${args}
    ${keep_h5ad ? 'ln qc/cells.h5ad cells.h5ad || cp qc/cells.h5ad cells.h5ad' : 'mv qc/cells.h5ad cells.h5ad'}
    """

    stub:
    def keep_h5ad = task.ext.save_h5ad ?: false
    """
    mkdir -p qc
    touch cells.h5ad qc/params.yaml
    ${keep_h5ad ? 'cp cells.h5ad qc/cells.h5ad' : ''}
    echo 'sample,n_cells_raw,n_cells_kept' > qc/qc_per_sample.csv
    echo 'fatescope qc --input samplesheet.csv --outdir qc (stub)' > qc/command.txt
    printf '"FATESCOPE:QC":\\n  fatescope: stub\\n' > qc/versions.yml
    """
}
