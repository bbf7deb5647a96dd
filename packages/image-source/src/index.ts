export { realLocation, isInsideDir } from './real-location.resolve.js';
export { IMAGE_EXTENSIONS, isImageFile, toId, listImages, collectFiles, stampFiles, fileStamp, type FileStamp } from './image-files.fs.js';
export { canonicalId, resolveRootPath, resolveImagePath, readImageFile, type ResolvedPath, type ResolvedImage, type ReadLimits } from './root-path.resolve.js';
export { decodeBase64 } from './base64.decode.js';
export { ACCEPTED_IMAGE_FORMATS, requireAcceptedFormat } from './image-format.check.js';
export { createUrlFetcher, isBlockedAddress, isLocalHostname, type UrlFetcher, type UrlFetcherOptions } from './safe-url.fetcher.js';
export { DECODE_TIMEOUT_S, decodeFailure, decodeImage, openImage, type DecodeLimits, type OpenedImage } from './image.decode.js';
