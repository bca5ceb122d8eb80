package recording

// CreateFile is the default Options.CreateFile, for tests that wrap it.
var CreateFile = createFile
