// Package deploy holds checks of the deployment files shipped at the top of
// the repository (docker-compose.yml); it has no code of its own.
package deploy
