/*
 * INTEGRATE: `fatescope integrate` -- the SCALEX-style VAE then Harmony on its latent (default), the
 * VAE alone or Harmony on PCA, on the cells' counts:
 * obsm["X_latent"] in integrate/cells.h5ad, the model checkpoint (integrate/checkpoint/, reusable
 * with params.integrate_projection; absent for Harmony on PCA, which has no model) and a run
 * summary (docs/cells.md).
 *
 * Inputs: the cells (AMBIENT's when it ran, else QC's); a saved integrate/ folder to project
 * into ([] when none). Label process_gpu: CUDA when params.use_gpu (-profile gpu), else CPU.
 */

process INTEGRATE {
    label 'process_medium'
    label 'process_gpu'

    input:
    path h5ad, stageAs: 'cells/cells.h5ad'
    path projection, stageAs: 'projection/*'

    output:
    path "integrate", emit: outdir
    path "cells.h5ad", emit: h5ad  // in integrate/ too only with task.ext.save_h5ad (lean publishing)
    path "integrate/checkpoint", emit: checkpoint, optional: true
    path "integrate/integrate.json", emit: summary
    path "integrate/versions.yml", emit: versions

    script:
    def args = task.ext.args ?: ''
    def keep_h5ad = task.ext.save_h5ad ?: false  // lean publishing: conf/modules.config
    def projection_arg = projection ? "--projection ${projection}" : ''
    """
    fatescope integrate --input ${h5ad} --outdir integrate ${projection_arg} ${args}
    ${keep_h5ad ? 'ln integrate/cells.h5ad cells.h5ad || cp integrate/cells.h5ad cells.h5ad' : 'mv integrate/cells.h5ad cells.h5ad'}
    """

    stub:
    def keep_h5ad = task.ext.save_h5ad ?: false
    """
    mkdir -p integrate/checkpoint
    touch cells.h5ad integrate/checkpoint/model.pt integrate/params.yaml
    ${keep_h5ad ? 'cp cells.h5ad integrate/cells.h5ad' : ''}
    echo '{}' > integrate/integrate.json
    echo 'fatescope integrate --input cells/cells.h5ad --outdir integrate (stub)' > integrate/command.txt
    printf '"FATESCOPE:INTEGRATE":\\n  fatescope: stub\\n' > integrate/versions.yml
    """
}
