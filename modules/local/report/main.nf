/*
 * REPORT: `fatescope report` -- one self-contained HTML page (images embedded) over the run's
 * stage folders: summary, QC, embedding, integration metrics, regulon activity, fate effects,
 * volcano plots, mash modes, diagnostics and recovery versus truth; report/report.html and
 * report/report_summary.json (docs/report.md).
 *
 * Inputs: the output folder of every stage that ran (staged under results/ by their names);
 * Nextflow's own timings are in pipeline_info/ (execution_trace, execution_report).
 */

process REPORT {
    label 'process_single'

    input:
    path stage_dirs, stageAs: 'results/*', arity: '1..*'

    output:
    path "report", emit: outdir
    path "report/report.html", emit: html
    path "report/report_summary.json", emit: summary
    path "report/versions.yml", emit: versions

    script:
    def args = task.ext.args ?: ''
    """
    fatescope report --results results --outdir report ${args}
    """

    stub:
    """
    mkdir -p report
    echo '<html></html>' > report/report.html
    echo '{}' > report/report_summary.json
    touch report/params.yaml
    echo 'fatescope report --results results --outdir report (stub)' > report/command.txt
    printf '"FATESCOPE:REPORT":\\n  fatescope: stub\\n' > report/versions.yml
    """
}
