/*
 * QC: `fatescope qc --merge` -- join the samples QC_LOAD loaded (genes: inner or outer join;
 * barcodes <sample>_<barcode>), filter cells and genes, report per sample; qc/cells.h5ad and
 * qc/qc_per_sample.csv, the same as one `fatescope qc --input samplesheet.csv` run makes.
 *
 * Inputs: QC_LOAD's qc_samples/<sample>.h5ad files in samplesheet order (main.nf sorts them by
 * sample), staged as qc_samples/01/<sample>.h5ad, ...; the guide map ([] when there is none).
 */

process QC {
    tag "${samples instanceof List ? samples.size() : 1} samples"
    label 'process_medium'

    input:
    path samples, stageAs: 'qc_samples/??/*', arity: '1..*'
    path guide_map

    output:
    path "qc", emit: outdir
    path "cells.h5ad", emit: h5ad  // in qc/ too only with task.ext.save_h5ad (lean publishing)
    path "qc/qc_per_sample.csv", emit: per_sample
    path "qc/versions.yml", emit: versions

    script:
    def args = task.ext.args ?: ''
    def keep_h5ad = task.ext.save_h5ad ?: false  // lean publishing: conf/modules.config
    def guide_map_arg = guide_map ? "--guide-map ${guide_map}" : ''
    def merged = (samples instanceof List ? samples : [samples]).collect { sample -> "--merge ${sample}" }.join(' ')
    """
    fatescope qc ${merged} --outdir qc ${guide_map_arg} ${args}
    ${keep_h5ad ? 'ln qc/cells.h5ad cells.h5ad || cp qc/cells.h5ad cells.h5ad' : 'mv qc/cells.h5ad cells.h5ad'}
    """

    stub:
    def keep_h5ad = task.ext.save_h5ad ?: false
    """
    mkdir -p qc
    touch cells.h5ad qc/params.yaml
    ${keep_h5ad ? 'cp cells.h5ad qc/cells.h5ad' : ''}
    printf 'sample,cells_before,genes_before,cells_after\ns1,1,1,1\n' > qc/qc_per_sample.csv
    echo 'fatescope qc --merge qc_samples/01/s1.h5ad --outdir qc (stub)' > qc/command.txt
    printf '"FATESCOPE:QC":\\n  fatescope: stub\\n' > qc/versions.yml
    """
}
