/*
 * CHECK_IMAGES: before any stage runs, every container image the run will use reports the version
 * of the `fatescope` it carries (IMAGE_VERSION, `fatescope --version`), which must equal the
 * pipeline's (manifest.version): an older image would reject options added since, or compute
 * differently. Emits `ready` once every image passed; the first stages wait for it (main.nf).
 *
 * Inside a container the image's installed `fatescope` runs (Nextflow appends the pipeline's bin/
 * to PATH, after the image's). Without a container engine the one check is of the first
 * `fatescope` on PATH: an installed one, else the pipeline's bin/fatescope (the checkout's code).
 */

process IMAGE_VERSION {
    tag "${image ?: 'no container'}"
    label 'process_single'
    container "${image}"

    input:
    val image

    output:
    tuple val(image), stdout, emit: version

    script:
    """
    fatescope --version
    """

    stub:
    """
    echo 'fatescope, version ${workflow.manifest.version}'
    """
}

workflow CHECK_IMAGES {
    take:
    images  // channel: the container images of the run ('' without a container engine)

    main:
    IMAGE_VERSION(images)
    ready = IMAGE_VERSION.out.version
        .map { image, reported -> checkedVersion(image, reported) }
        .collect()

    emit:
    ready   // value channel: the checked image names, once all passed
}

/*
 * The image when its `fatescope --version` (e.g. "fatescope, version 0.1.0") is the pipeline's
 * manifest.version; else stop the run, naming both versions and what to change.
 */
def checkedVersion(image, reported) {
    def found = reported.toString().trim().tokenize(' ').last()
    def expected = workflow.manifest.version
    if (found != expected) {
        def where = image
            ? "container image '${image}' carries fatescope ${found}; use the image built for ${expected} (containers/README.md: tag ${expected}) or set --python_container / --python_gpu_container / --r_container"
            : "`fatescope` on PATH (no container engine) is version ${found}; put the Python environment of this checkout first on PATH"
        error("fatescope version mismatch: this pipeline is fatescope ${expected} (manifest.version), but the ${where}")
    }
    return image
}
