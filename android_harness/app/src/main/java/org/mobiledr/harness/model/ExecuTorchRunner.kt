package org.mobiledr.harness.model

import java.io.File
import org.pytorch.executorch.EValue
import org.pytorch.executorch.Module
import org.pytorch.executorch.Tensor

/** `.pte` programs (XNNPACK or portable kernels) through the ExecuTorch Android AAR. */
class ExecuTorchRunner(private val file: File, private val outputNames: List<String>, private val threads: Int) : Runner {
    override val runtime = "executorch"
    private var module: Module? = null

    override fun load() {
        // mmap keeps the weights in the page cache instead of a second heap copy; loading "forward"
        // here moves its cost out of the first inference.
        module = Module.load(file.absolutePath, Module.LOAD_MODE_MMAP, threads).also { it.loadMethod("forward") }
    }

    override fun run(input: InputTensor): Map<String, FloatArray> {
        val module = checkNotNull(module) { "load() first" }
        // The direct buffer is wrapped, not copied; pass the input on every call (memory planning
        // reuses the input slot).
        val outputs = module.forward(EValue.from(Tensor.fromBlob(input.buffer, input.shape)))
        check(outputs.size == outputNames.size) { "${file.name} returned ${outputs.size} outputs, the manifest lists ${outputNames.size}" }
        return outputNames.zip(outputs).associate { (name, value) -> name to value.toTensor().dataAsFloatArray }
    }

    override fun close() {
        module?.destroy()
        module = null
    }
}
