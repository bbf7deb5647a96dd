export { IMAGE_EXTENSIONS, isImageFile, toId, resolveUnderRoot, listImages, collectFiles, stampFiles, type FileStamp } from './image-files.fs.js';
