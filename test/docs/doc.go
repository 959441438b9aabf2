// Package docs checks that README.md keeps up with the code: every condition reason the
// controllers set, every flag the manager defines and every top-level Helm value is documented.
package docs
