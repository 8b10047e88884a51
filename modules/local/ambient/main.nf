/*
 * AMBIENT: `fatescope ambient` (optional, params.run_ambient) -- a CellBender-style VAE (cell
 * signal + ambient fraction x profile) adds layers["decontaminated"] to QC's cells; ambient/.
 *
 * Inputs: QC's cells.h5ad; the raw (unfiltered) matrix of params.ambient_raw ([] when there is
 * none: the ambient profile comes from the lowest-UMI barcodes of each sample).
 */

process AMBIENT {
    label 'process_medium'
    label 'process_gpu'

    input:
    path h5ad, stageAs: 'qc/cells.h5ad'
    path raw, stageAs: 'raw/*'

    output:
    path "ambient", emit: outdir
    path "cells.h5ad", emit: h5ad  // in ambient/ too only with task.ext.save_h5ad (lean publishing)
    path "ambient/ambient.json", emit: summary
    path "ambient/versions.yml", emit: versions

    script:
    def args = task.ext.args ?: ''
    def keep_h5ad = task.ext.save_h5ad ?: false  // lean publishing: conf/modules.config
    def raw_arg = raw ? "--raw ${raw}" : ''
    """
    fatescope ambient --input ${h5ad} --outdir ambient ${raw_arg} ${args}
    ${keep_h5ad ? 'ln ambient/cells.h5ad cells.h5ad || cp ambient/cells.h5ad cells.h5ad' : 'mv ambient/cells.h5ad cells.h5ad'}
    """

    stub:
    def keep_h5ad = task.ext.save_h5ad ?: false
    """
    mkdir -p ambient
    touch cells.h5ad ambient/params.yaml
    ${keep_h5ad ? 'cp cells.h5ad ambient/cells.h5ad' : ''}
    echo '{}' > ambient/ambient.json
    echo 'fatescope ambient --input qc/cells.h5ad --outdir ambient (stub)' > ambient/command.txt
    printf '"FATESCOPE:AMBIENT":\\n  fatescope: stub\\n' > ambient/versions.yml
    """
}
