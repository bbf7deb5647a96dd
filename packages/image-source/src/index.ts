export { realLocation, isInsideDir } from './real-location.resolve.js';
export { IMAGE_EXTENSIONS, isImageFile, toId, resolveUnderRoot, listImages, collectFiles, stampFiles, type FileStamp } from './image-files.fs.js';
