export { buildService, type EncoderServiceDeps } from './app.js';
export { loadOnnxModel, ModelFileError, type EncoderModel, type ModelOptions } from './onnx.model.js';
export { decodeImage, type PreprocessOptions } from './preprocess.image.js';
export { imageTensors, rgbToTensor, expandOrientations } from './tensor-layout.transform.js';
export { inspectModel, exposeFeature, type ModelLayout } from './feature-output.graph.js';
export { provisionModel, sha256File, DEFAULT_MODEL, ProvisionError, type ProvisionOptions } from './model.provisioner.js';
export { modelPathFrom } from './model-path.config.js';
export { int8PathFor } from './model-path.config.js';
