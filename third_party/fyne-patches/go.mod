// Not a module to build: Fyne source files that scripts/fyne-overlay.go lays over
// fyne.io/fyne/v2 (see README.md). This go.mod keeps them out of ringside's ./... .
module ringside/third_party/fyne-patches

go 1.26
