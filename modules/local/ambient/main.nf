/*
 * AMBIENT: `fatescope ambient` (optional, params.run_ambient) -- a CellBender-style VAE (cell
 * signal + ambient fraction x profile) adds layers["decontaminated"] to QC's cells; ambient/.
 *
 * Inputs: QC's cells.h5ad; the raw (unfiltered) matrix of params.ambient_raw ([] when there is
 * none: the ambient profile comes from the lowest-UMI barcodes of each sample).
 */

process AMBIENT {
    label 'process_gpu'

    input:
    path h5ad, stageAs: 'qc/cells.h5ad'
    path raw, stageAs: 'raw/*'

    output:
    path "ambient", emit: outdir
    path "ambient/cells.h5ad", emit: h5ad
    path "ambient/ambient.json", emit: summary
    path "ambient/versions.yml", emit: versions

    script:
    def args = task.ext.args ?: ''
    def raw_arg = raw ? "--raw ${raw}" : ''
    """
    fatescope ambient --input ${h5ad} --outdir ambient ${raw_arg} ${args}
    """

    stub:
    """
    mkdir -p ambient
    touch ambient/cells.h5ad ambient/params.yaml
    echo '{}' > ambient/ambient.json
    echo 'fatescope ambient --input qc/cells.h5ad --outdir ambient (stub)' > ambient/command.txt
    printf '"FATESCOPE:AMBIENT":\\n  fatescope: stub\\n' > ambient/versions.yml
    """
}
