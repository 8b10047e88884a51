/*
 * EVAL_RECOVERY: `fatescope eval-recovery` -- score fate-fit's theta estimates and RANK's hits
 * against the simulation's planted truth; eval-recovery/recovery_metrics.json and
 * recovery_table.csv. Runs only on simulated data (-profile test without --input).
 *
 * Inputs: fate/theta_posterior_summary.npz, simulate/truth/sim_recovery.csv, rank/hits_ranked.csv;
 * PRUNE's regulons.parquet and simulate/truth/regulons_truth.csv ([] and [] when the regulon
 * stages are skipped) for the target precision/recall of the planted regulons; EMBED's cells.h5ad
 * and simulate/truth/cells.parquet ([] and [] when integration is skipped) for batch mixing and
 * the separation of the true fates.
 */

process EVAL_RECOVERY {
    label 'process_single'

    input:
    path theta_summary, stageAs: 'fate/theta_posterior_summary.npz'
    path truth, stageAs: 'simulate/truth/sim_recovery.csv'
    path hits, stageAs: 'rank/hits_ranked.csv'
    path regulons, stageAs: 'prune/*'
    path regulon_truth, stageAs: 'simulate/truth/regulons/*'
    path cells, stageAs: 'embed/*'
    path cell_truth, stageAs: 'simulate/truth/cells/*'

    output:
    path "eval-recovery", emit: outdir
    path "eval-recovery/recovery_metrics.json", emit: metrics
    path "eval-recovery/recovery_table.csv", emit: table
    path "eval-recovery/versions.yml", emit: versions

    script:
    def args = task.ext.args ?: ''
    def regulon_args = regulons ? "--regulons ${regulons} --regulon-truth ${regulon_truth}" : ''
    def cells_args = cells ? "--cells ${cells} --cell-truth ${cell_truth}" : ''
    """
    fatescope eval-recovery --theta-summary ${theta_summary} --truth ${truth} --hits ${hits} --outdir eval-recovery ${regulon_args} ${cells_args} ${args}
    """

    stub:
    """
    mkdir -p eval-recovery
    echo '{}' > eval-recovery/recovery_metrics.json
    echo 'day,fate' > eval-recovery/recovery_table.csv
    touch eval-recovery/params.yaml
    echo 'fatescope eval-recovery --theta-summary fate/theta_posterior_summary.npz --outdir eval-recovery (stub)' > eval-recovery/command.txt
    printf '"FATESCOPE:EVAL_RECOVERY":\\n  fatescope: stub\\n' > eval-recovery/versions.yml
    """
}
