/*
 * FATE_FIT: `fatescope fate-fit` -- fit the MOI-aware fate-effect model on QC's cells.h5ad and
 * export posterior summaries: the daywise gene and guide tables for mash, theta/delta posterior
 * summaries, QC tables, the loss curve and the fitted model; into fate/ (docs/fate.md).
 *
 * Inputs: QC's cells.h5ad, the guide map ([] when there is none: the AnnData's uns is used) and
 * FATE_PROBS's fate_probs.csv ([] when the samples bring their fate probabilities).
 * Label process_gpu: CUDA when params.use_gpu (-profile gpu), else CPU.
 */

process FATE_FIT {
    label 'process_low'
    label 'process_gpu'

    input:
    path h5ad, stageAs: 'qc/cells.h5ad'
    path guide_map
    path fate_probs, stageAs: 'fate_probs/*'

    output:
    path "fate", emit: outdir
    path "fate/gene_daywise_for_mash.csv", emit: gene_daywise
    path "fate/guide_daywise_for_mash.csv", emit: guide_daywise
    path "fate/theta_posterior_summary.npz", emit: theta_summary
    path "fate/delta_posterior_summary.npz", emit: delta_summary
    path "fate/qc_delta_mean_by_gene.csv", emit: qc_delta
    path "fate/qc_theta_beta_offset_by_gene.csv", emit: qc_offset
    path "fate/loss_curve.csv", emit: loss_curve
    path "fate/fate_model.pt", emit: model
    path "fate/fit_summary.json", emit: summary
    path "fate/versions.yml", emit: versions

    script:
    def args = task.ext.args ?: ''
    def guide_map_arg = guide_map ? "--guide-map ${guide_map}" : ''
    def fate_probs_arg = fate_probs ? "--fate-probs ${fate_probs}" : ''
    """
    fatescope fate-fit --input ${h5ad} --outdir fate ${guide_map_arg} ${fate_probs_arg} ${args}
    """

    stub:
    """
    mkdir -p fate
    echo 'gene,betahat_d0,se_d0' > fate/gene_daywise_for_mash.csv
    echo 'guide,gene,betahat_d0,se_d0' > fate/guide_daywise_for_mash.csv
    touch fate/theta_posterior_summary.npz fate/delta_posterior_summary.npz fate/fate_model.pt
    echo 'gene' > fate/qc_delta_mean_by_gene.csv
    echo 'gene' > fate/qc_theta_beta_offset_by_gene.csv
    echo 'step,loss' > fate/loss_curve.csv
    echo '{}' > fate/fit_summary.json
    touch fate/params.yaml
    echo 'fatescope fate-fit --input qc/cells.h5ad --outdir fate (stub)' > fate/command.txt
    printf '"FATESCOPE:FATE_FIT":\\n  fatescope: stub\\n' > fate/versions.yml
    """
}
